"""The ARCA sync agent: every sealed Argentine receipt gets exactly one CAE, in number order.

ARCA accepts the numbers of a (CUIT, point of sale, receipt type) strictly one after the other, and
Stalela gave them at sealing time. So, per series:

- **In order.** Number N is sent only once N-1 is authorised (or N is the series' first). A receipt
  whose predecessor is still pending waits (``waiting_previous``) and is woken by the predecessor's
  outcome, in the transaction that records it: no polling, no lost wake-up.
- **Never two CAEs for one receipt.** Before sending, the sync row is marked as sent (committed).
  Any later attempt with the mark set asks ``FECompConsultar`` first: a receipt ARCA holds under our
  number with our total, buyer and date is ours (its answer was lost, or the worker died before
  storing it), and its CAE is taken; ``602`` means never registered, safe to send again.
- **Never a number reused silently.** A rejection (Resultado R), or a 10016 that
  ``FECompConsultar``/``FECompUltimoAutorizado`` explain as a number ARCA holds for another
  receipt, marks the invoice ``rejected`` with ARCA's codes and a webhook; ARCA still expects that
  number, so the rest of the series waits (``series_blocked``) until an administrator realigns it
  (``realign`` below, docs/jurisdictions/ar-operations.md).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from stalela.authority.arca import service as arca
from stalela.authority.arca.errors import (
    CertificateRejected,
    NotConfigured,
    NumberMismatch,
    Rejected,
    TicketUnavailable,
    TokenRejected,
    Transient,
)
from stalela.authority.arca.wsfe import StoredReceipt
from stalela.authority.repository import AuthorityRepository
from stalela.audit.service import record
from stalela.auth.principal import Principal
from stalela.config import Settings
from stalela.errors import Conflict, NotFound, ServiceUnavailable, ValidationFailed
from stalela.fiscal.ledger.repository import MerkleRepository
from stalela.db.base import utcnow
from stalela.db.session import Database
from stalela.fiscal.invoices.models import AuthorityAck
from stalela.fiscal.invoices.repository import InvoiceRepository, SeriesRepository
from stalela.fiscal.jurisdictions import get_jurisdiction
from stalela.fiscal.jurisdictions.arca_qr import qr_url
from stalela.observability.logging import get_logger
from stalela.observability.metrics import sync_acknowledged
from stalela.outbox.registry import RetryLater
from stalela.outbox.service import enqueue
from stalela.tenancy.context import bind_tenant
from stalela.tenancy.repository import OutletRepository

log = get_logger("stalela.authority.arca")
UNREACHABLE = "ARCA could not be reached or gave no valid answer; retrying (details in the server logs)"


async def align_and_resync(db: Database, settings: Settings, tenant_id: str) -> None:
    """Start every series that has numbered nothing yet after ARCA's last number of it (a point of sale
    that issued receipts before Stalela), then queue every invoice still waiting for ARCA.

    Runs when credentials are saved and when a point of sale is created. A series already in use is
    never renumbered (its numbers are sealed): a disagreement there surfaces as a 10016 on its next
    receipt, explained by the agent."""
    try:
        endpoint = await arca.wsfe_endpoint(db, settings, tenant_id)
    except (NotConfigured, CertificateRejected, TicketUnavailable) as exc:
        log.info("arca.align_skipped", tenant_id=tenant_id, reason=str(exc)[:300])
        return
    async with db.transaction(readonly=True) as session:
        await bind_tenant(session, tenant_id)
        points = await OutletRepository(session).points_of_sale()
        used = {(s.outlet_id, s.code) for s in await SeriesRepository(session).used()}
    for outlet_id, pos in points:
        for invoice_type in sorted(get_jurisdiction("AR").invoice_types, key=int):
            if (outlet_id, invoice_type) in used:
                continue
            last = await endpoint.client.fe_comp_ultimo_autorizado(endpoint.auth, pos, int(invoice_type))
            if last > 0:
                async with db.transaction() as session:
                    await bind_tenant(session, tenant_id)
                    aligned = await SeriesRepository(session).align(tenant_id, outlet_id, invoice_type, last)
                log.info("arca.series_aligned", tenant_id=tenant_id, outlet_id=outlet_id, type=invoice_type,
                         last=last, aligned=aligned is not None)
    async with db.transaction() as session:
        await bind_tenant(session, tenant_id)
        for invoice_id in await AuthorityRepository(session).all_waiting_invoices():
            enqueue(session, tenant_id, "authority.sync", {"invoice_id": invoice_id})


async def realign(db: Database, settings: Settings, principal: Principal, outlet_id: str,
                  invoice_type: str) -> dict[str, Any]:
    """Continue a series of a point of sale from ARCA's last number, in a new generation.

    The explicit, audited act that unblocks a series after ARCA refused one of its receipts (ARCA
    still expects that number, which Stalela sealed and never reuses) or after another system took
    its numbers. The sealed receipts stay as they are; the ones still waiting whose numbers come
    after ARCA's last can never be authorised under them: they are marked ``rejected``
    (``series_realigned``), each with a webhook, for the merchant to issue again. The new generation
    hands out ARCA's next number; its fiscal numbers carry ``/k`` so that none repeats Stalela's.
    """
    if invoice_type not in get_jurisdiction("AR").invoice_types:
        raise ValidationFailed(f"{invoice_type!r} is not an ARCA receipt type", code="invalid_invoice_type",
                               field="type")
    async with db.transaction(readonly=True) as session:
        await bind_tenant(session, principal.tenant_id)
        outlet = await OutletRepository(session).get(outlet_id)
    if outlet is None or not principal.can_use_outlet(outlet_id):
        raise NotFound("no such outlet", code="outlet_not_found")
    if outlet.pos_number is None:
        raise ValidationFailed("this outlet is not a point of sale", code="pos_number_required", field="outlet_id")
    try:
        endpoint = await arca.wsfe_endpoint(db, settings, principal.tenant_id)
        last = await endpoint.client.fe_comp_ultimo_autorizado(endpoint.auth, outlet.pos_number, int(invoice_type))
        # Waiting receipts ARCA may hold already (an answer lost before the series got stuck) keep
        # their CAE: asked one by one, as the agent would, before the generation closes.
        settled = await _settle_waiting(db, endpoint, principal.tenant_id, outlet_id, invoice_type, last)
    except (NotConfigured, CertificateRejected, TicketUnavailable) as exc:
        raise Conflict(f"ARCA cannot be asked for the series' last number: {exc}", code="arca_not_configured") \
            from None
    except (Transient, TokenRejected, Rejected) as exc:
        raise ServiceUnavailable(f"ARCA did not answer: {exc}"[:300], code="arca_unavailable", retry_after=30) \
            from None
    async with db.transaction() as session:
        await bind_tenant(session, principal.tenant_id)
        # The tenant's log first, then the series: the order every sealer takes them in.
        await MerkleRepository(session).lock_log(principal.tenant_id)
        series = await SeriesRepository(session).lock_series(principal.tenant_id, [(outlet_id, invoice_type)])
        current = series[(outlet_id, invoice_type)]
        if current.counter == last:
            raise Conflict(f"ARCA's last number of this series is {last}, as Stalela's: nothing to realign",
                           code="series_in_step")
        now = utcnow()
        stranded = await AuthorityRepository(session).pending_in_series(current.id, 0)
        if any(row.claimed_until is not None and row.claimed_until > now for _, row in stranded):
            raise Conflict("a receipt of this series is being sent to ARCA right now: retry in a minute",
                           code="series_busy", headers={"Retry-After": "60"})
        old, new = await SeriesRepository(session).supersede(principal.tenant_id, outlet_id, invoice_type, last)
        detail = (f"the series was realigned on ARCA's last number {last}: this receipt can no longer be "
                  "authorised under its number; issue the sale again")
        for invoice_id, row in stranded:
            row.status, row.error_code, row.error, row.updated_at = "rejected", "series_realigned", detail, now
            row.details = json.dumps({"result": None, "cae_due": None, "observations": [], "errors": [],
                                      "arca_qr_url": None})
            enqueue(session, principal.tenant_id, "invoice.sync_failed", {
                "invoice_id": invoice_id, "code": "series_realigned", "detail": detail[:300], "status": "rejected"})
        outcome = {"outlet_id": outlet_id, "type": invoice_type, "arca_last": last,
                   "previous": {"series_id": old.id, "generation": old.generation, "last_number": old.counter},
                   "series": {"series_id": new.id, "generation": new.generation, "next_number": last + 1},
                   "acknowledged": settled, "rejected": [invoice_id for invoice_id, _ in stranded]}
        await record(session, principal.tenant_id, principal.actor, "arca.series_realigned", new.id, outcome)
    return outcome


async def _settle_waiting(db: Database, endpoint: arca.Endpoint, tenant_id: str, outlet_id: str, invoice_type: str,
                          last: int) -> list[str]:
    """Acknowledge the series' waiting receipts that ARCA holds as they were sealed; their ids."""
    async with db.transaction(readonly=True) as session:
        await bind_tenant(session, tenant_id)
        series = await SeriesRepository(session).current(outlet_id, invoice_type)
        waiting = [] if series is None else await AuthorityRepository(session).waiting_in_series(series.id, last)
    settled = []
    for invoice_id, payload in waiting:
        ar = payload["ar"]
        stored = await endpoint.client.fe_comp_consultar(endpoint.auth, ar["point_of_sale"], ar["cbte_tipo"],
                                                         ar["number"])
        if stored is not None and _matches(stored, ar) and stored.cae:
            job = _Job(tenant_id, invoice_id, payload["series_id"], payload["fiscal_number"], ar,
                       payload["seller_tax_id"], sent_before=True)
            await _acknowledge(db, job, stored.cae, stored.cae_due, stored.observations, None)
            settled.append(invoice_id)
    return settled


def _sent_mark(number: int) -> str:
    # Kept in invoice_sync.uid (the DGI keeps its request uid there): set, committed, before the request.
    return f"arca-sent:{number}"


@dataclass(frozen=True)
class _Job:
    tenant_id: str
    invoice_id: str
    series_id: str
    fiscal_number: str
    ar: dict[str, Any]
    seller_cuit: str
    sent_before: bool


async def sync_invoice(db: Database, settings: Settings, tenant_id: str, invoice_id: str) -> None:
    job = await _claim(db, settings, tenant_id, invoice_id)
    if job is None:
        return
    try:
        await _authorise(db, settings, job)
    finally:
        async with db.transaction() as session:
            await bind_tenant(session, tenant_id)
            await AuthorityRepository(session).release([invoice_id])


async def _claim(db: Database, settings: Settings, tenant_id: str, invoice_id: str) -> _Job | None:
    async with db.transaction() as session:
        await bind_tenant(session, tenant_id)
        invoice = await InvoiceRepository(session).get(invoice_id)
        if invoice is None:
            return None
        payload = json.loads(invoice.payload)
        ar = payload.get("ar")
        if ar is None:
            return None
        repo = AuthorityRepository(session)
        await repo.ensure_sync_row(tenant_id, invoice_id, invoice.outlet_id, invoice.issued_at)
        row = await repo.sync_row(invoice_id, lock=True)
        if row.status != "pending":
            return None
        if invoice.counter > payload.get("series_first", 1):
            previous = await repo.series_neighbour(invoice.series_id, invoice.counter - 1)
            status = previous[1].status if previous else "pending"
            if status == "pending":
                # Woken by the predecessor's outcome (``_wake_next``), in the transaction recording it.
                row.error_code, row.error = "waiting_previous", (
                    f"ARCA authorises the numbers of a series in order: number {invoice.counter - 1} first")
                return None
            if status != "acknowledged":
                row.error_code, row.error = "series_blocked", (
                    f"number {invoice.counter - 1} of this series was not authorised and ARCA still expects it: "
                    "an administrator realigns the series (POST /v1/authority/arca/realign)")
                return None
        now = utcnow()
        if row.claimed_until is not None and row.claimed_until > now:
            raise RetryLater("another delivery of this invoice is talking to ARCA", 2.0)
        row.claimed_until = now + timedelta(seconds=4 * settings.authority_timeout_seconds + 5)
        row.attempts += 1
        return _Job(tenant_id, invoice_id, invoice.series_id, invoice.fiscal_number, ar, payload["seller_tax_id"],
                    sent_before=row.uid == _sent_mark(ar["number"]))


async def _authorise(db: Database, settings: Settings, job: _Job) -> None:
    ar = job.ar
    try:
        endpoint = await arca.wsfe_endpoint(db, settings, job.tenant_id)
        if job.sent_before:
            stored = await endpoint.client.fe_comp_consultar(endpoint.auth, ar["point_of_sale"], ar["cbte_tipo"],
                                                             ar["number"])
            if stored is not None:
                await _settle_stored(db, job, stored)
                return
        else:
            await _note(db, job, uid=_sent_mark(ar["number"]))
        try:
            result = await endpoint.client.fe_cae_solicitar(endpoint.auth, ar)
        except NumberMismatch:
            await _explain_mismatch(db, job, endpoint)
            return
        if result.result != "A" or not result.cae:
            await _reject(db, job, "arca_rejected", result.errors, result.observations)
            return
        await _acknowledge(db, job, result.cae, result.cae_due, result.observations, result.processed_at)
    except NotConfigured as exc:
        # Shown on the invoice and in /v1/sync/status; saving the credentials resyncs every waiting invoice.
        await _note(db, job, error_code="arca_not_configured", error=str(exc))
    except CertificateRejected as exc:
        await _note(db, job, error_code="arca_certificate_rejected", error=str(exc)[:1000])
    except TicketUnavailable as exc:
        await _note(db, job, error_code="arca_ticket_unavailable", error=str(exc)[:1000])
        raise RetryLater("WSAA holds a ticket we do not have", 600.0) from None
    except TokenRejected as exc:
        if exc.code == 600:  # the ticket expired or ARCA no longer knows it: log in again, then retry
            await arca.forget_ticket(db, job.tenant_id)
            raise RetryLater("ARCA refused the ticket (600): logging in again", 1.0) from None
        await _note(db, job, error_code="arca_cuit_not_represented", error=str(exc)[:1000])
    except Rejected as exc:
        await _reject(db, job, "arca_rejected", exc.errors, exc.observations)
    except Transient as exc:
        log.warning("arca.unreachable", tenant_id=job.tenant_id, invoice_id=job.invoice_id, error=str(exc)[:500])
        await _note(db, job, error_code="authority_unreachable", error=UNREACHABLE)
        raise


async def _explain_mismatch(db: Database, job: _Job, endpoint: arca.Endpoint) -> None:
    """10016: the number or the date is not the next ARCA expects. Ask ARCA which, never guess."""
    ar, client, auth = job.ar, endpoint.client, endpoint.auth
    stored = await client.fe_comp_consultar(auth, ar["point_of_sale"], ar["cbte_tipo"], ar["number"])
    if stored is not None:
        await _settle_stored(db, job, stored)
        return
    last = await client.fe_comp_ultimo_autorizado(auth, ar["point_of_sale"], ar["cbte_tipo"])
    number = ar["number"]
    if last == number - 1:
        code, detail = "arca_date_rejected", (
            f"ARCA expects number {number} but refuses its date {ar['date']} (older than the last authorised "
            "receipt of the series, or outside ARCA's window)")
    elif last < number - 1:
        code, detail = "arca_number_gap", f"ARCA's last number of this series is {last}: it expects {last + 1}"
    else:
        code, detail = "arca_number_taken", (
            f"ARCA already holds number {number} of this series for another receipt (last {last}): another "
            "system issues on this point of sale")
    await _reject(db, job, code, [(10016, detail)], [])


def _matches(stored: StoredReceipt, ar: dict[str, Any]) -> bool:
    """Whether what ARCA holds under our number is this receipt (the fields a second system would differ in)."""
    return (stored.cbte_tipo == ar["cbte_tipo"] and stored.point_of_sale == ar["point_of_sale"]
            and stored.total is not None and Decimal(stored.total) == Decimal(ar["imp_total"])
            and stored.date == date.fromisoformat(ar["date"])
            and int(stored.doc_number or 0) == int(ar["doc_number"] or 0))


async def _settle_stored(db: Database, job: _Job, stored: StoredReceipt) -> None:
    if _matches(stored, job.ar) and stored.cae and stored.result in (None, "A"):
        await _acknowledge(db, job, stored.cae, stored.cae_due, stored.observations, None)
    else:
        await _reject(db, job, "arca_number_taken", [(10016, (
            f"ARCA holds number {job.ar['number']} of this series for a receipt that is not this one (total "
            f"{stored.total}, date {stored.date})"))], [])


def _codes(pairs: list[tuple[int, str]]) -> list[dict[str, Any]]:
    return [{"code": code, "message": message} for code, message in pairs]


async def _note(db: Database, job: _Job, **values: Any) -> None:
    """Only while pending: a late writer never overwrites an outcome."""
    async with db.transaction() as session:
        await bind_tenant(session, job.tenant_id)
        await AuthorityRepository(session).update_pending(job.invoice_id, updated_at=utcnow(), **values)


async def _wake_next(session: Any, job: _Job) -> None:
    """The next number of the series waits for this outcome: queue it in the same transaction."""
    following = await AuthorityRepository(session).series_neighbour(job.series_id, job.ar["number"] + 1)
    if following is not None and following[1].status == "pending":
        enqueue(session, job.tenant_id, "authority.sync", {"invoice_id": following[0]})


async def _acknowledge(db: Database, job: _Job, cae: str, cae_due: date | None,
                       observations: list[tuple[int, str]], processed_at: str | None) -> None:
    arca_qr = qr_url(job.ar, job.seller_cuit, cae)
    details = {"result": "A", "cae_due": cae_due.isoformat() if cae_due else None,
               "observations": _codes(observations), "arca_qr_url": arca_qr}
    async with db.transaction() as session:
        await bind_tenant(session, job.tenant_id)
        repo = AuthorityRepository(session)
        row = await repo.sync_row(job.invoice_id, lock=True)
        if row.status == "acknowledged":  # a concurrent delivery of the same event got here first
            return
        now = utcnow()
        session.add(AuthorityAck(
            tenant_id=job.tenant_id, invoice_id=job.invoice_id, nim=f"{job.ar['point_of_sale']:05d}", uid=None,
            code=cae, counters=None, authority_time=processed_at, qr_code=arca_qr,
            raw=json.dumps({"cae": cae, **details}), created_at=now))
        row.status, row.error_code, row.error, row.details, row.updated_at = \
            "acknowledged", None, None, json.dumps(details), now
        sync_acknowledged(session, row.sealed_at, now)
        enqueue(session, job.tenant_id, "invoice.acknowledged", {
            "invoice_id": job.invoice_id, "authority_code": cae, "counters": None, "cae_due": details["cae_due"]})
        await _wake_next(session, job)


async def _reject(db: Database, job: _Job, code: str, errors: list[tuple[int, str]],
                  observations: list[tuple[int, str]]) -> None:
    detail = "; ".join(f"{c}: {m}" for c, m in errors + observations) or "rejected without a reason"
    details = {"result": "R", "cae_due": None, "observations": _codes(observations), "errors": _codes(errors),
               "arca_qr_url": None}
    async with db.transaction() as session:
        await bind_tenant(session, job.tenant_id)
        repo = AuthorityRepository(session)
        if not await repo.update_pending(job.invoice_id, status="rejected", error_code=code, error=detail[:1000],
                                         details=json.dumps(details), updated_at=utcnow()):
            return  # acknowledged meanwhile: keep that outcome
        enqueue(session, job.tenant_id, "invoice.sync_failed", {
            "invoice_id": job.invoice_id, "code": code, "detail": detail[:300], "status": "rejected"})
        await _wake_next(session, job)
