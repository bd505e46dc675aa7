"""Verifying Stalela's webhook deliveries (Standard Webhooks, docs/webhooks.md).

The signature is ``v1,`` + base64 of HMAC-SHA256 over ``"{webhook-id}.{webhook-timestamp}.{body}"`` keyed
with the base64-decoded secret after ``whsec_``. During a rotation a delivery carries several
space-separated signatures (new secret and previous one), and a receiver may hold several secrets too:
one match is enough. Always verify the raw body bytes, before any JSON parsing.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from typing import Any, Mapping, Sequence

DEFAULT_TOLERANCE = 300  # seconds either side of the receiver's clock, as the Standard Webhooks libraries
PREFIX = "whsec_"


class WebhookVerificationError(Exception):
    """The delivery is not authentic, or too old or too new to be trusted (a possible replay)."""


def _key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix(PREFIX), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("a webhook secret is whsec_ followed by base64") from exc


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,…`` signature the server sends for this secret (useful to test a receiver)."""
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode("ascii")


class Webhook:
    """``Webhook("whsec_…").verify(body, headers)`` returns the event (type, timestamp, data) or raises.

    ``secret`` may be a list: during a rotation, the new and the previous secret both verify."""

    def __init__(self, secret: str | Sequence[str], *, tolerance: int = DEFAULT_TOLERANCE) -> None:
        secrets = [secret] if isinstance(secret, str) else list(secret)
        if not secrets:
            raise ValueError("at least one secret")
        self._keys = [_key(s) for s in secrets]
        self.tolerance = tolerance

    def verify(self, body: bytes | str, headers: Mapping[str, str], *, now: float | None = None) -> Any:
        body = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        lower = {k.lower(): v for k, v in headers.items()}
        msg_id, stamp, signatures = (lower.get("webhook-id"), lower.get("webhook-timestamp"),
                                     lower.get("webhook-signature"))
        if not msg_id or not stamp or not signatures:
            raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
        try:
            timestamp = int(stamp)
        except ValueError:
            raise WebhookVerificationError("webhook-timestamp is not an integer") from None
        now = time.time() if now is None else now
        if timestamp < now - self.tolerance:
            raise WebhookVerificationError("the delivery is too old")
        if timestamp > now + self.tolerance:
            raise WebhookVerificationError("the delivery's timestamp is in the future")
        signed = f"{msg_id}.{timestamp}.".encode() + body
        expected = [hmac.new(k, signed, hashlib.sha256).digest() for k in self._keys]
        for candidate in signatures.split(" "):
            version, _, value = candidate.partition(",")
            if version != "v1":
                continue  # other schemes (v1a: asymmetric) are not Stalela's; skip, never fail on them
            try:
                given = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                continue
            if any(hmac.compare_digest(given, e) for e in expected):
                try:
                    return json.loads(body)
                except ValueError:
                    raise WebhookVerificationError("the body is not JSON") from None
        raise WebhookVerificationError("no signature matches")
