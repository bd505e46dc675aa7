"""The sync agent: every sealed invoice reaches the DGI exactly once in effect.

Per invoice: create the request, compare the authority's totals with ours to the unit, confirm, and
keep the acknowledgement in its own table. Never confirm a mismatch. A uid is stored only once its
totals were checked, so after a crash or a timeout the agent resumes the same request (confirm it
if still pending) or learns from the authority that the number is already confirmed, instead of
creating a duplicate.
"""
from __future__ import annotations

import asyncio
import json
import weakref
from collections import defaultdict
from datetime import timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from stalela.authority.adapters import dgi_emcf as emcf
from stalela.authority.models import AuthorityAck, AuthorityDevice, InvoiceSync
from stalela.authority.repository import AuthorityRepository
from stalela.auth.principal import Principal
from stalela.config import Settings
from stalela.db.base import utcnow
from stalela.db.session import Database
from stalela.errors import NotFound
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


async def register_device(session: AsyncSession, settings: Settings, principal: Principal, outlet_id: str,
                          nim: str, base_url: str, token: str) -> AuthorityDevice:
    # The agent sends the token to this URL with paths appended: the shared outbound guard, and no
    # query string (``?x=`` would turn every appended path into a query and choose the path). First,
    # before this transaction's first statement where possible: the guard's DNS lookup should not
    # hold a lock (on SQLite the write lock is taken at the first statement).
    base_url = (await netguard.vet_url(base_url, allow_private=settings.webhooks_allow_private, field="base_url",
                                       code_prefix="device_url", allow_query=False)).rstrip("/")
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


def sync_view(row: InvoiceSync | None, ack: AuthorityAck | None) -> dict[str, Any]:
    if row is None:
        return {"status": "pending", "authority_code": None, "counters": None, "acknowledged_at": None, "error": None}
    return {
        "status": row.status,
        "authority_code": ack.code if ack else None,
        "counters": ack.counters if ack else None,
        "acknowledged_at": rfc3339(ack.created_at) if ack else None,
        "error": {"code": row.error_code, "detail": row.error} if row.error_code else None,
    }


async def sync_status(session: AsyncSession) -> list[dict[str, Any]]:
    now = utcnow()
    out = []
    for outlet_id, pending, oldest, failed, acknowledged, last_ok in await AuthorityRepository(session).status_by_outlet():
        device = await AuthorityRepository(session).device(outlet_id)
        out.append({
            "outlet_id": outlet_id, "pending": int(pending or 0), "failed": int(failed or 0),
            "acknowledged": int(acknowledged or 0),
            "oldest_pending_seconds": round((now - oldest).total_seconds(), 3) if oldest else None,
            "last_success_at": rfc3339(last_ok) if last_ok else None,
            "device": device.status if device else "none",
        })
    return out


# --- the agent -----------------------------------------------------------------------------------


async def _update_sync(db: Database, tenant_id: str, invoice_id: str, **values: Any) -> None:
    """Only while pending (or just releasing the claim): a late writer never overwrites an outcome."""
    async with db.transaction() as session:
        await bind_tenant(session, tenant_id)
        stmt = update(InvoiceSync).where(InvoiceSync.invoice_id == invoice_id)
        if set(values) != {"claimed_until"}:
            stmt = stmt.where(InvoiceSync.status == "pending")
        await session.execute(stmt.values(updated_at=utcnow(), **values))


async def _fail(db: Database, tenant_id: str, invoice_id: str, code: str, detail: str) -> None:
    async with db.transaction() as session:
        await bind_tenant(session, tenant_id)
        result = await session.execute(
            update(InvoiceSync).where(InvoiceSync.invoice_id == invoice_id, InvoiceSync.status == "pending")
            .values(status="failed", error_code=code, error=detail[:1000], uid=None, updated_at=utcnow()))
        if result.rowcount != 1:  # acknowledged meanwhile by another delivery: keep that outcome
            return
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
        now = utcnow()
        if row.claimed_until is not None and row.claimed_until > now:
            raise RetryLater("another delivery of this invoice is talking to the authority", 2.0)
        # Longer than any exchange can take (three requests at the authority timeout each).
        row.claimed_until = now + timedelta(seconds=4 * settings.authority_timeout_seconds + 5)
        row.attempts += 1
        resume_uid, retrying = row.uid, row.attempts > 1
        token = open_secret(settings, device.token_encrypted, _context(tenant_id, invoice.outlet_id))
        document = json.loads(invoice.document)
        tenant = await TenantRepository(session).get(tenant_id)
        nim, outlet_id = device.nim, invoice.outlet_id

    client = emcf.EmcfClient(device.base_url, token, timeout=settings.authority_timeout_seconds,
                             allow_private=settings.webhooks_allow_private)
    try:
        await _synced(db, settings, client, tenant_id, invoice_id, outlet_id, document, tenant.tax_id, nim,
                      resume_uid, retrying)
    finally:
        await _update_sync(db, tenant_id, invoice_id, claimed_until=None)


async def _synced(db: Database, settings: Settings, client: emcf.EmcfClient, tenant_id: str, invoice_id: str,
                  outlet_id: str, document: dict[str, Any], seller_tax_id: str, nim: str, resume_uid: str | None,
                  retrying: bool) -> None:
    try:
        async with _gate(tenant_id, outlet_id):
            ack = await _exchange(db, client, tenant_id, invoice_id, document, seller_tax_id, resume_uid, retrying)
    except emcf.DeviceUnauthorized as exc:
        async with db.transaction() as session:
            await bind_tenant(session, tenant_id)
            await session.execute(update(AuthorityDevice).where(AuthorityDevice.outlet_id == outlet_id)
                                  .values(status="unauthorized", last_error=str(exc)[:500], updated_at=utcnow()))
        await _update_sync(db, tenant_id, invoice_id, error_code="device_unauthorized", error=str(exc)[:1000])
        return
    except emcf.TooManyPending:
        raise RetryLater("the device has 10 pending requests", 2.0) from None
    except emcf.Transient as exc:
        expired = isinstance(exc, emcf.Expired)
        # The text on the invoice says what class of problem this is, never which: "refused" versus
        # "timed out" (or a host and port) would make the device URL a port scanner. Details: the log.
        log.warning("authority.unreachable", tenant_id=tenant_id, outlet_id=outlet_id, invoice_id=invoice_id,
                    error=str(exc)[:500])
        await _update_sync(db, tenant_id, invoice_id,
                           error_code="authority_request_expired" if expired else "authority_unreachable",
                           error=str(exc)[:1000] if expired else UNREACHABLE)
        raise
    if ack is not None:
        await _acknowledge(db, tenant_id, invoice_id, nim, ack)


async def _exchange(db: Database, client: emcf.EmcfClient, tenant_id: str, invoice_id: str,
                    document: dict[str, Any], seller_tax_id: str, resume_uid: str | None,
                    retrying: bool) -> dict[str, Any] | None:
    """One create/check/confirm round with the authority; returns its ack (None if it failed for good)."""
    rn = document["fiscal_number"]
    try:
        if retrying:
            status = await client.status()
            pending = {p.get("rn"): p.get("uid") for p in status.get("pendingRequestsList") or []}
            if rn in pending:
                if pending[rn] == resume_uid:  # created and checked before the interruption: finish it
                    return await client.confirm(resume_uid)
                await client.cancel(pending[rn])  # created, but its totals were never checked
        created = await client.create(emcf.to_emcf_request(document, seller_tax_id))
        mismatch = emcf.totals_mismatch(document["totals"], created)
        if mismatch:
            await client.cancel(created.uid)
            await _fail(db, tenant_id, invoice_id, "totals_mismatch", mismatch)
            return None
        await _update_sync(db, tenant_id, invoice_id, uid=created.uid)
        return await client.confirm(created.uid)
    except emcf.AlreadyConfirmed as done:
        return done.ack
    except emcf.Rejected as exc:
        await _fail(db, tenant_id, invoice_id, "rejected", str(exc))
        return None
