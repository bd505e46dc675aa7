"""The DGI e-MCF protocol (HTTP + bearer token per device): create, confirm, cancel, status.

Errors are sorted by what the sync agent must do about them, not by HTTP status:
- ``Transient``: retry later (5xx, timeouts, dropped connections, malformed answers);
- ``TooManyPending``: the device already has 10 pending requests; wait, it is not a failure;
- ``DeviceUnauthorized``: the token is wrong or revoked; stop using the device until it is fixed;
- ``AlreadyConfirmed``: the authority already confirmed this invoice number; carries its ack;
- ``Rejected``: the authority refuses this invoice as such (retrying cannot help).
"""
from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from stalela.kit.money import money_str
from stalela.kit.netguard import guarded_client
from stalela.observability.metrics import authority_request



class AuthorityError(Exception):
    pass


class Transient(AuthorityError):
    pass


class TooManyPending(AuthorityError):
    pass


class DeviceUnauthorized(AuthorityError):
    pass


class Rejected(AuthorityError):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code


class Expired(Transient):
    """A created request expired or was cancelled before its confirmation: retry from the start."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code


class AlreadyConfirmed(AuthorityError):
    def __init__(self, ack: dict[str, Any]) -> None:
        super().__init__("invoice number already confirmed by the authority")
        self.ack = ack


@dataclass
class Created:
    uid: str
    totals: dict[str, dict[str, str]]
    total: str
    vtotal: str


def to_emcf_request(document: dict[str, Any], seller_tax_id: str) -> dict[str, Any]:
    """Our sealed invoice as the e-MCF's invoice request (rn = our fiscal number)."""
    buyer = document.get("buyer") or None
    request: dict[str, Any] = {
        "nif": seller_tax_id,
        "rn": document["fiscal_number"],
        "mode": document["price_mode"],
        "type": document["type"],
        "items": [{"code": line.get("code"), "type": line["item_type"], "name": line["description"],
                   "price": line["unit_price"], "quantity": line["quantity"], "taxGroup": line["tax_group"]}
                  for line in document["lines"]],
        "client": {"type": buyer["type"], "nif": buyer.get("tax_id"), "name": buyer.get("name")} if buyer else None,
        "operator": {"id": "stalela", "name": "Stalela"},
        "payment": [{"name": p["method"], "amount": p["amount"]} for p in document.get("payments") or []],
        "reference": document.get("original"),
    }
    if document.get("exchange"):
        request["curCode"] = document["exchange"]["currency"]
        request["curRate"] = document["exchange"]["rate"]
    return request


def totals_mismatch(ours: dict[str, Any], theirs: Created) -> str | None:
    """Compare to the unit; returns a description of the first difference, or None."""
    def norm(value: Any) -> str | None:
        try:
            return money_str(Decimal(str(value)))
        except (InvalidOperation, ValueError, TypeError):
            return None

    if norm(theirs.total) != ours["total"]:
        return f"total: ours {ours['total']}, authority {theirs.total}"
    their_groups = theirs.totals or {}
    for group in ours["groups"]:
        other = their_groups.get(group["group"]) or {}
        for field in ("base", "vat"):
            if norm(other.get(field)) != group[field]:
                return f"group {group['group']} {field}: ours {group[field]}, authority {other.get(field)}"
    extra = set(their_groups) - {g["group"] for g in ours["groups"]}
    if extra:
        return f"authority reports groups we do not: {sorted(extra)}"
    return None


class EmcfClient:
    def __init__(self, base_url: str, token: str, *, timeout: float = 10.0, allow_private: bool = False,
                 client: httpx.AsyncClient | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.allow_private = allow_private
        self.timeout = httpx.Timeout(timeout, connect=min(timeout, 5.0))
        self._headers = {"Authorization": f"Bearer {token}"}
        self._client = client

    async def _call(self, method: str, path: str, json: Any = None) -> tuple[int, Any]:
        client = self._client or _shared_client(self.allow_private)
        try:
            with authority_request(method, self.base_url + path, path) as call:  # metrics + client span
                response = await client.request(method, self.base_url + path, json=json, headers=self._headers,
                                                timeout=self.timeout)
                call.done(response.status_code)
        except httpx.HTTPError as exc:  # timeouts, refused or dropped connections, protocol errors
            raise Transient(f"{type(exc).__name__}: {exc}") from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code == 401:
            raise DeviceUnauthorized((body or {}).get("errorDesc", "unauthorized"))
        if response.status_code == 429:
            raise TooManyPending("the device has too many pending requests")
        if response.status_code >= 500 or body is None:
            raise Transient(f"authority answered {response.status_code}")
        return response.status_code, body

    async def status(self) -> dict[str, Any]:
        _, body = await self._call("GET", "/api/info/status")
        return body

    async def create(self, request: dict[str, Any]) -> Created:
        status, body = await self._call("POST", "/api/invoice", request)
        if status == 409 and body.get("errorCode") == "RN_ALREADY_CONFIRMED":
            raise AlreadyConfirmed(body)
        if status != 200:
            raise Rejected(str(body.get("errorCode", status)), str(body.get("errorDesc", "")))
        try:
            return Created(uid=body["uid"], totals=body.get("totals") or {}, total=body["total"],
                           vtotal=body.get("vtotal", ""))
        except KeyError as exc:
            raise Transient(f"malformed create answer: missing {exc}") from None

    async def confirm(self, uid: str) -> dict[str, Any]:
        status, body = await self._call("PUT", f"/api/invoice/{uid}/confirm")
        code = str(body.get("errorCode", status))
        if status == 410 or (status == 409 and code == "CANCELLED"):
            # The request died (about two minutes pass, or it was cancelled) before its confirmation:
            # the invoice was never reported. Start over: the retry asks what is pending, finds
            # nothing for this number and creates it again.
            raise Expired(code, str(body.get("errorDesc", "")))
        if status != 200:
            raise Rejected(code, str(body.get("errorDesc", "")))
        if not body.get("codeDEFDGI"):
            raise Transient("confirm answer without codeDEFDGI")
        return body

    async def cancel(self, uid: str) -> None:
        status, body = await self._call("PUT", f"/api/invoice/{uid}/cancel")
        if status not in (200, 404, 409, 410):  # already gone, confirmed or expired: nothing to cancel
            raise Rejected(str(body.get("errorCode", status)), str(body.get("errorDesc", "")))


_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[bool, httpx.AsyncClient]]" = (
    weakref.WeakKeyDictionary())


def _shared_client(allow_private: bool) -> httpx.AsyncClient:
    """One connection pool per event loop (a pool cannot cross loops) and guard mode, for every device.

    Device URLs are set by tenants: every connection goes through the outbound guard, which checks
    the addresses the host resolves to at connect time (the URL itself was checked when saved)."""
    per_loop = _clients.setdefault(asyncio.get_running_loop(), {})
    client = per_loop.get(allow_private)
    if client is None or client.is_closed:
        client = guarded_client(allow_private, limits=httpx.Limits(max_connections=100, max_keepalive_connections=20))
        per_loop[allow_private] = client
    return client
