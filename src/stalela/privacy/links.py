"""Signed download links of portability exports: the token in the URL is the only credential.

A token is itsdangerous' ``URLSafeTimedSerializer`` over ``{"e": export_id, "t": tenant_id}`` and the
time of signing, authenticated with HMAC-SHA256 under a key derived (HMAC) from the secret and a salt
of its own, so that no other signed value of the service can pass for a link. The secrets are a
list (``STALELA_EXPORT_LINK_SECRETS``, newest first): the newest signs, every one verifies, so a secret
is rotated by putting a new one in front and dropping the old one once its links have expired. Without
the setting, one secret is derived from the master key. Time comes from ``export_clock``, so tests
control expiry.
"""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timezone

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from stalela.config import Settings
from stalela.errors import Forbidden
from stalela.kit.masterkey import master_key
from stalela.privacy import export_clock

SALT = "stalela.privacy.export-download.v1"
_DERIVATION_LABEL = b"stalela/privacy/export-links/v1"


class LinkInvalid(Forbidden):
    code = "export_link_invalid"
    title = "Invalid download link"


class _ClockedSigner(TimestampSigner):
    def get_timestamp(self) -> int:
        return int(export_clock.now().timestamp())


@dataclass(frozen=True)
class LinkClaims:
    export_id: str
    tenant_id: str
    issued_at: datetime
    expired: bool  # older than the link lifetime (the export's own expiry is checked by the caller)


def link_secrets(settings: Settings) -> list[bytes]:
    """Newest first."""
    if settings.export_link_secrets is not None:
        found = [s.strip().encode() for s in settings.export_link_secrets.get_secret_value().split(",") if s.strip()]
        if found:
            return found
    return [hmac.new(master_key(settings), _DERIVATION_LABEL, hashlib.sha256).hexdigest().encode()]


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    # itsdangerous takes its keys oldest to newest and signs with the last.
    return URLSafeTimedSerializer(list(reversed(link_secrets(settings))), salt=SALT, signer=_ClockedSigner,
                                  signer_kwargs={"digest_method": hashlib.sha256, "key_derivation": "hmac"})


def issue(settings: Settings, tenant_id: str, export_id: str) -> str:
    return _serializer(settings).dumps({"e": export_id, "t": tenant_id})


def read(settings: Settings, token: str | None) -> LinkClaims:
    """The claims of a genuine token (expired or not); ``LinkInvalid`` for anything else."""
    if not token:
        raise LinkInvalid("a download link needs its token (?token=...)")
    serializer = _serializer(settings)
    max_age = settings.export_link_hours * 3600
    try:
        payload, signed_at = serializer.loads(token, max_age=max_age, return_timestamp=True)
        expired = False
    except SignatureExpired as exc:  # genuine, but too old (or from the future): still say which export
        if exc.payload is None or exc.date_signed is None:
            raise LinkInvalid("the download link is not valid") from None
        try:
            payload = serializer.load_payload(exc.payload)
        except BadSignature:
            raise LinkInvalid("the download link is not valid") from None
        signed_at, expired = exc.date_signed, True
    except BadSignature:
        raise LinkInvalid("the download link is not valid") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("e"), str) or not isinstance(payload.get("t"), str):
        raise LinkInvalid("the download link is not valid")
    return LinkClaims(payload["e"], payload["t"], signed_at.astimezone(timezone.utc), expired)
