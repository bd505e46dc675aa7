"""The sync agent: every sealed invoice reaches the DGI exactly once in effect.

Per invoice: create the request, compare the authority's totals with ours to the unit, confirm, and
keep the acknowledgement in its own table. Never confirm a mismatch. A uid is stored only once its
totals were checked, so after a crash or a timeout the agent resumes the same request (confirm it
if still pending) or learns from the authority that the number is already confirmed, instead of
creating a duplicate. A faulty authority costs latency, not attempts: each request is retried within the
exchange, and the device's 10 pending slots are managed (``DeviceSlots``) rather than waited out.
"""
from __future__ import annotations

import asyncio
import json
import random
import time
import weakref
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from stalela.authority import outcomes
from stalela.authority.adapters import dgi_emcf as emcf
from stalela.authority.arca.repository import ArcaRepository
from stalela.authority.models import AuthorityDevice
from stalela.authority.repository import AuthorityRepository
from stalela.auth.principal import Principal
from stalela.config import Settings
from stalela.db.base import utcnow
from stalela.db.session import Database
from stalela.errors import Conflict, NotFound
from stalela.fiscal.invoices.buyers import reveal_buyers
from stalela.fiscal.invoices.models import AuthorityAck, InvoiceSync
from stalela.fiscal.invoices.repository import InvoiceRepository
from stalela.kit import netguard
from stalela.kit.clock import rfc3339
from stalela.kit.secretbox import open_secret, seal_secret
from stalela.observability.logging import get_logger
from stalela.observability.metrics import sync_acknowledged
from stalela.outbox.registry import RetryLater
from stalela.outbox.service import enqueue
from stalela.tenancy.context import bind_tenant
from stalela.tenancy.repository import OutletRepository, TenantRepository

T = TypeVar("T")
log = get_logger("stalela.authority")
UNREACHABLE = "the authority could not be reached or gave no valid answer; retrying (details in the server logs)"

# The e-MCF allows 10 pending requests per device; stay under it per process. (Per event loop:
# an asyncio semaphore cannot be shared between loops.)
_gates: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict]" = weakref.WeakKeyDictionary()


def _gate(tenant_id: str, outlet_id: str) -> asyncio.Semaphore:
    per_loop = _gates.setdefault(asyncio.get_running_loop(), defaultdict(lambda: asyncio.Semaphore(4)))
    return per_loop[(tenant_id, outlet_id)]


def _context(tenant_id: str, outlet_id: str) -> str:
    return f"device:{tenant_id}:{outlet_id}"


async def vet_device_url(settings: Settings, base_url: str) -> str:
    """The agent sends the token to this URL with paths appended: the shared outbound guard, and no
    query string (``?x=`` would turn every appended path into a query and choose the path). The API
    calls it before the request's transaction starts (its DNS lookup must hold no lock or connection)."""
    return await netguard.vet_url(base_url if isinstance(base_url, netguard.VettedUrl) else base_url.rstrip("/"),
                                  allow_private=settings.webhooks_allow_private, field="base_url",
                                  code_prefix="device_url", allow_query=False,
                                  max_length=AuthorityDevice.base_url.type.length)


async def register_device(session: AsyncSession, settings: Settings, principal: Principal, outlet_id: str,
                          nim: str, base_url: str, token: str) -> AuthorityDevice:
    # A URL the route vetted comes back at once; other callers' (CLI, dashboard) are vetted here, first.
    tenant = await TenantRepository(session).get(principal.tenant_id)
    if tenant is not None and tenant.jurisdiction != "CD":
        raise Conflict("a DGI e-MCF device is for DRC tenants; an AR tenant's receipts go to ARCA "
                       "(PUT /v1/authority/arca/credentials)", code="jurisdiction_mismatch")
    base_url = await vet_device_url(settings, base_url)
    netguard.check_header_value(token, field="token", code="device_token_invalid")
    outlet = await OutletRepository(session).get(outlet_id)
    if outlet is None or not principal.can_use_outlet(outlet_id):
        raise NotFound("no such outlet", code="outlet_not_found")
    repo = AuthorityRepository(session)
    device = await repo.device(outlet_id)
    now = utcnow()
    secret = seal_secret(settings, token, _context(principal.tenant_id, outlet_id))
    if device is None:
        device = AuthorityDevice(tenant_id=principal.tenant_id, outlet_id=outlet_id, created_at=now)
        session.add(device)
    device.nim, device.base_url, device.token_encrypted = nim, base_url, secret
    device.status, device.last_error, device.updated_at = "active", None, now
    # Invoices that waited for a device (or for a fixed token) go now.
    enqueue(session, principal.tenant_id, "authority.resync", {"outlet_id": outlet_id})
    await session.flush()
    return device


async def get_device(session: AsyncSession, principal: Principal, outlet_id: str) -> AuthorityDevice:
    device = await AuthorityRepository(session).device(outlet_id)
    if device is None or not principal.can_use_outlet(outlet_id):
        raise NotFound("this outlet has no authority device", code="device_not_found")
    return device


def device_view(device: AuthorityDevice) -> dict[str, Any]:
    return {"outlet_id": device.outlet_id, "nim": device.nim, "base_url": device.base_url, "status": device.status,
            "last_error": device.last_error, "updated_at": rfc3339(device.updated_at), "token": "[stored encrypted]"}


async def _arca_state(session: AsyncSession) -> str:
    """An Argentine tenant's way to ARCA: configured, not_configured, awaiting_certificate or expired."""
    row = await ArcaRepository(session).credentials()
    if row is None:
        return "not_configured"
    if row.certificate_pem is None:
        return "awaiting_certificate"
    return "expired" if row.not_after is not None and row.not_after <= utcnow() else "configured"


async def sync_status(session: AsyncSession, jurisdiction: str | None = None) -> list[dict[str, Any]]:
    """Per outlet. The DGI's outlets name their device; an Argentine tenant's outlets all reach ARCA
    with the tenant's credentials, so they say ``device: "arca"`` and the credentials' state."""
    now = utcnow()
    out = []
    arca = await _arca_state(session) if jurisdiction == "AR" else None
    for outlet_id, pending, oldest, failed, acknowledged, last_ok, rejected in \
            await AuthorityRepository(session).status_by_outlet():
        row = {
            "outlet_id": outlet_id, "pending": int(pending or 0), "failed": int(failed or 0),
            "rejected": int(rejected or 0), "acknowledged": int(acknowledged or 0),
            "oldest_pending_seconds": round((now - oldest).total_seconds(), 3) if oldest else None,
            "last_success_at": rfc3339(last_ok) if last_ok else None,
        }
        if arca is not None:
            row.update(device="arca", arca=arca)
        else:
            device = await AuthorityRepository(session).device(outlet_id)
            row["device"] = device.status if device else "none"
        out.append(row)
    return out


# --- the agent -----------------------------------------------------------------------------------


async def _update_sync(db: Database, tenant_id: str, invoice_id: str, **values: Any) -> None:
    """Only while pending: a late writer never overwrites an outcome."""
    async with db.transaction() as session:
        await bind_tenant(session, tenant_id)
        await AuthorityRepository(session).update_pending(invoice_id, updated_at=utcnow(), **values)


async def _release(db: Database, tenant_id: str, invoice_ids: list[str]) -> None:
    """End claims, whatever the outcome."""
    async with db.transaction() as session:
        await bind_tenant(session, tenant_id)
        await AuthorityRepository(session).release(invoice_ids)


async def _fail(db: Database, tenant_id: str, invoice_id: str, code: str, detail: str) -> None:
    async with db.transaction() as session:
        await bind_tenant(session, tenant_id)
        now = utcnow()
        settled = await AuthorityRepository(session).settle_pending(  # acknowledged meanwhile: keep that outcome
            invoice_id, status="failed", error_code=code, error=detail[:1000], uid=None, updated_at=now)
        if settled is None:
            return
        await outcomes.record(session, tenant_id, settled[0], settled[1], "failed", now)
        enqueue(session, tenant_id, "invoice.sync_failed", {"invoice_id": invoice_id, "code": code,
                                                             "detail": detail[:300]})


async def _acknowledge(db: Database, tenant_id: str, invoice_id: str, nim: str, ack: dict[str, Any]) -> None:
    async with db.transaction() as session:
        await bind_tenant(session, tenant_id)
        repo = AuthorityRepository(session)
        row = await repo.sync_row(invoice_id, lock=True)
        if row.status == "acknowledged":  # a concurrent delivery of the same event got here first
            return
        session.add(AuthorityAck(
            tenant_id=tenant_id, invoice_id=invoice_id, nim=str(ack.get("nim") or nim), uid=ack.get("uid"),
            code=str(ack["codeDEFDGI"]), counters=ack.get("counters"), authority_time=ack.get("dateTime"),
            qr_code=ack.get("qrCode"), raw=json.dumps(ack), created_at=utcnow()))
        row.status, row.error_code, row.error, row.updated_at = "acknowledged", None, None, utcnow()
        sync_acknowledged(session, row.sealed_at, row.updated_at)  # authority_sync_lag_seconds, at commit
        await outcomes.record(session, tenant_id, row.outlet_id, row.sealed_at, "acknowledged", row.updated_at)
        enqueue(session, tenant_id, "invoice.acknowledged", {
            "invoice_id": invoice_id, "authority_code": ack["codeDEFDGI"], "counters": ack.get("counters")})


async def sync_invoice(db: Database, settings: Settings, tenant_id: str, invoice_id: str) -> None:
    async with db.transaction() as session:
        await bind_tenant(session, tenant_id)
        invoice = await InvoiceRepository(session).get(invoice_id)
        if invoice is None:
            return
        repo = AuthorityRepository(session)
        await repo.ensure_sync_row(tenant_id, invoice_id, invoice.outlet_id, invoice.issued_at)
        row = await repo.sync_row(invoice_id, lock=True)
        if row.status != "pending":
            return
        device = await repo.device(invoice.outlet_id)
        if device is None or device.status != "active":
            # Visible on the invoice and in /v1/sync/status; registering or fixing the device resyncs.
            row.error_code = "no_device" if device is None else "device_unauthorized"
            row.error = "the outlet has no DGI device" if device is None else "the DGI refused the device token"
            return
        # Saved before a rule existed (plain http, a ?query choosing the path...): the token is not sent.
        reason = netguard.refused(device.base_url, allow_private=settings.webhooks_allow_private, allow_query=False)
        if reason is not None:
            row.error_code = "device_url_refused"
            row.error = f"the device URL is refused ({reason}); register the device again"
            return
        now = utcnow()
        if row.claimed_until is not None and row.claimed_until > now:
            raise RetryLater("another delivery of this invoice is talking to the authority", 2.0)
        # Longer than any exchange can take: requests are only retried while a whole request still fits.
        lease = 4 * settings.authority_timeout_seconds + 5
        row.claimed_until = now + timedelta(seconds=lease)
        row.attempts += 1
        resume_uid, retrying = row.uid, row.attempts > 1
        # Requests of the device that other deliveries left pending with their totals checked: resumed first.
        left = await repo.claim_left_pending(invoice.outlet_id, invoice_id, now, row.claimed_until, _SLOTS)
        token = open_secret(settings, device.token_encrypted, _context(tenant_id, invoice.outlet_id))
        # The DGI is sent the buyer it requires (seal v2 keeps it encrypted; restricted ones still go).
        buyers = await reveal_buyers(session, settings, tenant_id, [invoice], purpose="authority")
        document = {**json.loads(invoice.document), **buyers.get(invoice.id, {})}
        tenant = await TenantRepository(session).get(tenant_id)
        nim, outlet_id, claimed_until = device.nim, invoice.outlet_id, row.claimed_until

    client = emcf.EmcfClient(device.base_url, token, timeout=settings.authority_timeout_seconds,
                             allow_private=settings.webhooks_allow_private)
    device_slots = DeviceSlots(db, client, tenant_id, outlet_id, nim, claimed_until,
                               deadline=time.monotonic() + lease - settings.authority_timeout_seconds)
    try:
        await _synced(device_slots, invoice_id, document, tenant.tax_id, resume_uid, retrying, dict(left))
    finally:
        await _release(db, tenant_id, [invoice_id, *(i for i, _ in left)])


# Tries of one request within an exchange. A transient failure (5xx, a dropped connection, a timeout) is
# retried after a short pause instead of failing the whole outbox attempt: during the outbox's backoff
# (seconds, then minutes) a created request would hold one of the device's 10 slots. 20 % faults: 0.2^4.
_TRIES = 4
_SLOTS = 10  # the e-MCF's pending requests per device


class DeviceSlots:
    """One exchange with an outlet's device, and the device's pending slots (requests created, not confirmed).

    What the agent has pending at a device is durable: a request whose totals were checked has its uid in
    ``invoice_sync.uid``; one created but never checked (answer lost, worker killed) is listed by the device
    under our fiscal number (``rn``). An invoice claimed by a live exchange is that exchange's business;
    every other pending request of ours is settled here the way its own retry would settle it: a checked
    uid is confirmed (and acknowledged), an unchecked one is cancelled. Never two confirms of one invoice.
    """

    def __init__(self, db: Database, client: emcf.EmcfClient, tenant_id: str, outlet_id: str, nim: str,
                 claimed_until: datetime, deadline: float) -> None:
        self.db, self.client, self.tenant_id, self.outlet_id, self.nim = db, client, tenant_id, outlet_id, nim
        self.claimed_until, self.deadline = claimed_until, deadline

    async def call(self, request: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``request`` with transient failures retried while the claim lasts; a full device freed once."""
        tries, freed = 0, False
        while True:
            try:
                return await request(*args)
            except emcf.TooManyPending:
                if freed:
                    raise
                freed = True
                await self.free()
            except emcf.Expired:
                raise
            except emcf.Transient:
                # Safe to repeat: status is a read, confirm and cancel are idempotent, and a create of an
                # rn still pending answers the same request (and a second request, at an authority that
                # made one, would never be confirmed: its uid is never stored; free() cancels it).
                tries += 1
                pause = random.uniform(0.1, 0.2) * 2 ** tries
                if tries >= _TRIES or time.monotonic() + pause > self.deadline:
                    raise
                await asyncio.sleep(pause)

    async def free(self) -> None:
        """The device is full (429): settle what is pending there and ours, if nobody else is on it."""
        try:
            status = await self.call(self.client.status)
        except emcf.Transient:
            return
        pending = {p["rn"]: p.get("uid") for p in status.get("pendingRequestsList") or [] if p.get("rn")}
        async with self.db.transaction() as session:
            await bind_tenant(session, self.tenant_id)
            ours = await AuthorityRepository(session).claim_by_numbers(self.outlet_id, list(pending), utcnow(),
                                                                       self.claimed_until)
        confirm, cancel = {}, []
        for rn, found in ours.items():
            if found is None:  # acknowledged or failed: whatever is still pending must never be confirmed
                cancel.append(pending[rn])
            elif found[1] == pending[rn]:
                confirm[found[0]] = found[1]
            else:  # created, but its totals were never checked
                cancel.append(pending[rn])
        try:
            await self.settle(confirm, cancel)
        finally:
            claimed = [found[0] for found in ours.values() if found]
            if claimed:
                await _release(self.db, self.tenant_id, claimed)

    async def settle(self, confirm: dict[str, str], cancel: list[str]) -> None:
        """Confirm checked requests (invoice -> uid) of invoices we claimed, and cancel the others."""
        try:
            for invoice_id, uid in confirm.items():
                try:
                    ack = await self.call(self.client.confirm, uid)
                except (emcf.Expired, emcf.Rejected):  # gone: the invoice's own retry creates it again
                    await _update_sync(self.db, self.tenant_id, invoice_id, uid=None)
                    continue
                await _acknowledge(self.db, self.tenant_id, invoice_id, self.nim, ack)
            for uid in cancel:
                await self.call(self.client.cancel, uid)
        except (emcf.Transient, emcf.Rejected):
            pass  # what is left stays pending until a later exchange, or its expiry


async def _synced(device: DeviceSlots, invoice_id: str, document: dict[str, Any], seller_tax_id: str,
                  resume_uid: str | None, retrying: bool, left: dict[str, str]) -> None:
    db, tenant_id = device.db, device.tenant_id
    try:
        async with _gate(tenant_id, device.outlet_id):
            if left:  # before creating more: what other deliveries left pending at the device
                await device.settle(left, [])
            ack = await _exchange(device, invoice_id, document, seller_tax_id, resume_uid, retrying)
    except emcf.DeviceUnauthorized as exc:
        async with db.transaction() as session:
            await bind_tenant(session, tenant_id)
            await AuthorityRepository(session).mark_device(device.outlet_id, status="unauthorized",
                                                           last_error=str(exc)[:500], updated_at=utcnow())
        await _update_sync(db, tenant_id, invoice_id, error_code="device_unauthorized", error=str(exc)[:1000])
        return
    except emcf.TooManyPending:
        # Freeing the device's slots did not help: live exchanges (or another system) hold them.
        raise RetryLater("the device has 10 pending requests", 2.0) from None
    except emcf.Transient as exc:
        expired = isinstance(exc, emcf.Expired)
        # The text on the invoice says what class of problem this is, never which: "refused" versus
        # "timed out" (or a host and port) would make the device URL a port scanner. Details: the log.
        log.warning("authority.unreachable", tenant_id=tenant_id, outlet_id=device.outlet_id, invoice_id=invoice_id,
                    error=str(exc)[:500])
        await _update_sync(db, tenant_id, invoice_id,
                           error_code="authority_request_expired" if expired else "authority_unreachable",
                           error=str(exc)[:1000] if expired else UNREACHABLE)
        raise
    if ack is not None:
        await _acknowledge(db, tenant_id, invoice_id, device.nim, ack)


async def _exchange(device: DeviceSlots, invoice_id: str, document: dict[str, Any], seller_tax_id: str,
                    resume_uid: str | None, retrying: bool) -> dict[str, Any] | None:
    """One create/check/confirm round with the authority; returns its ack (None if it failed for good)."""
    rn, call, client, db = document["fiscal_number"], device.call, device.client, device.db
    try:
        if retrying:
            status = await call(client.status)
            pending = {p.get("rn"): p.get("uid") for p in status.get("pendingRequestsList") or []}
            if rn in pending:
                if pending[rn] == resume_uid:  # created and checked before the interruption: finish it
                    return await call(client.confirm, resume_uid)
                await call(client.cancel, pending[rn])  # created, but its totals were never checked
        created = await call(client.create, emcf.to_emcf_request(document, seller_tax_id))
        mismatch = emcf.totals_mismatch(document["totals"], created)
        if mismatch:
            await call(client.cancel, created.uid)
            await _fail(db, device.tenant_id, invoice_id, "totals_mismatch", mismatch)
            return None
        await _update_sync(db, device.tenant_id, invoice_id, uid=created.uid)
        return await call(client.confirm, created.uid)
    except emcf.AlreadyConfirmed as done:
        return done.ack
    except emcf.Rejected as exc:
        await _fail(db, device.tenant_id, invoice_id, "rejected", str(exc))
        return None
