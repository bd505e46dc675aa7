"""The ARCA sync agent: every sealed Argentine receipt gets exactly one CAE, in number order.

ARCA accepts the numbers of a (CUIT, point of sale, receipt type) strictly one after the other, and
Stalela gave them at sealing time. So, per series:

- **In order.** Number N is sent only once N-1 is authorised (or N is the series' first). A receipt
  whose predecessor is still pending waits (``waiting_previous``) and is woken by the predecessor's
  outcome, in the transaction that records it: no polling, no lost wake-up.
- **Many per call.** With N goes the run of consecutive receipts after it that wait, unclaimed and
  never sent (up to ``BATCH``), in one FECAESolicitar: one round trip authorises a backlog instead of
  one per receipt (a series is serial, so this is what latency to ARCA costs or not).
- **Never two CAEs for one receipt.** Before sending, the sync rows are marked as sent (committed).
  Any later attempt with the mark set asks ``FECompConsultar`` first: a receipt ARCA holds under our
  number with our total, buyer and date is ours (its answer was lost, or the worker died before
  storing it), and its CAE is taken; ``602`` means never registered, safe to send again.
- **Never a number reused silently.** A rejection (Resultado R), or a 10016 that
  ``FECompConsultar``/``FECompUltimoAutorizado`` explain as a number ARCA holds for another
  receipt, marks the invoice ``rejected`` with ARCA's codes and a webhook; ARCA still expects that
  number, so the rest of the series waits (``series_blocked``) until an administrator realigns it
  (``series.realign``, docs/jurisdictions/ar-operations.md).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
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
from stalela.authority.arca.wsfe import NUMBER_MISMATCH, CaeResult, StoredReceipt
from stalela.authority.outcomes import Outcomes, record
from stalela.authority.repository import AuthorityRepository
from stalela.config import Settings
from stalela.db.base import utcnow
from stalela.db.session import Database
from stalela.fiscal.invoices.models import AuthorityAck
from stalela.fiscal.invoices.buyers import reveal_buyers
from stalela.fiscal.invoices.repository import InvoiceRepository
from stalela.fiscal.jurisdictions.arca_qr import qr_url
from stalela.observability.logging import get_logger
from stalela.observability.metrics import sync_acknowledged
from stalela.outbox.registry import RetryLater
from stalela.outbox.service import enqueue
from stalela.tenancy.context import bind_tenant

log = get_logger("stalela.authority.arca")
UNREACHABLE = "ARCA could not be reached or gave no valid answer; retrying (details in the server logs)"
# Receipts per FECAESolicitar. ARCA's manual allows more per request (for B and C); 50 keeps one
# answer small and a claim's lease ample, and already turns a 200 ms round trip into 4 ms a receipt.
BATCH = 50


def _sent_mark(number: int) -> str:
    # Kept in invoice_sync.uid (the DGI keeps its request uid there): set, committed, before the request.
    return f"arca-sent:{number}"


@dataclass(frozen=True)
class Job:
    tenant_id: str
    invoice_id: str
    series_id: str
    fiscal_number: str
    ar: dict[str, Any]
    seller_cuit: str
    sent_before: bool


def _lease(settings: Settings) -> timedelta:
    # Longer than the longest exchange: a login, a query, the request, and the two questions of a 10016,
    # each within the timeout (plus the connect limit).
    return timedelta(seconds=6 * settings.authority_timeout_seconds + 5)


async def sync_invoice(db: Database, settings: Settings, tenant_id: str, invoice_id: str) -> None:
    jobs = await _claim(db, settings, tenant_id, invoice_id)
    if not jobs:
        return
    try:
        await _authorise(db, settings, jobs)
    finally:
        async with db.transaction() as session:
            await bind_tenant(session, tenant_id)
            await AuthorityRepository(session).release([job.invoice_id for job in jobs])


async def _claim(db: Database, settings: Settings, tenant_id: str, invoice_id: str) -> list[Job]:
    """The receipt, if it may go now, and the run of waiting receipts after it that go with it."""
    async with db.transaction() as session:
        await bind_tenant(session, tenant_id)
        invoice = await InvoiceRepository(session).get(invoice_id)
        if invoice is None:
            return []
        payload = json.loads(invoice.payload)
        ar = payload.get("ar")
        if ar is None:
            return []
        repo = AuthorityRepository(session)
        await repo.ensure_sync_row(tenant_id, invoice_id, invoice.outlet_id, invoice.issued_at)
        # The predecessor's row first, locked (rows of a series are always locked in number order): its
        # outcome and its wake-up of this receipt commit together, so this read cannot see it pending
        # while the wake-up, not seeing this receipt yet, went nowhere.
        previous = None
        if invoice.counter > payload.get("series_first", 1):
            previous = await repo.series_neighbour(invoice.series_id, invoice.counter - 1, lock=True)
        row = await repo.sync_row(invoice_id, lock=True)
        if row.status != "pending":
            return []
        if invoice.counter > payload.get("series_first", 1):
            status = previous[1].status if previous else "pending"
            if status == "pending":
                # Woken by the predecessor's outcome (``_wake_next``), in the transaction recording it.
                row.error_code, row.error = "waiting_previous", (
                    f"ARCA authorises the numbers of a series in order: number {invoice.counter - 1} first")
                return []
            if status != "acknowledged":
                row.error_code, row.error = "series_blocked", (
                    f"number {invoice.counter - 1} of this series was not authorised and ARCA still expects it: "
                    "an administrator realigns the series (POST /v1/authority/arca/realign)")
                return []
        now = utcnow()
        if row.claimed_until is not None and row.claimed_until > now:
            raise RetryLater("another delivery of this invoice is talking to ARCA", 2.0)
        until = now + _lease(settings)
        row.claimed_until, row.attempts = until, row.attempts + 1
        first = Job(tenant_id, invoice_id, invoice.series_id, invoice.fiscal_number, ar, payload["seller_tax_id"],
                    sent_before=row.uid == _sent_mark(ar["number"]))
        # A first receipt sent before (a run whose answer was lost) takes the rest of that run along:
        # ARCA registers a series in order, so if it does not hold the first, it holds none after it
        # (asked below before anything is sent). A first never sent takes only receipts never sent.
        jobs = [first]
        for following_id, following, signed in await repo.series_run(invoice.series_id, invoice.counter, BATCH - 1):
            number = signed["ar"]["number"]
            if (number != jobs[-1].ar["number"] + 1 or following.status != "pending"
                    or (following.uid is not None and not first.sent_before)
                    or (following.claimed_until is not None and following.claimed_until > now)):
                break
            following.claimed_until, following.attempts = until, following.attempts + 1
            jobs.append(Job(tenant_id, following_id, invoice.series_id, signed["fiscal_number"], signed["ar"],
                            signed["seller_tax_id"], sent_before=following.uid == _sent_mark(number)))
        return await with_documents(session, settings, tenant_id, jobs)


async def with_documents(session: Any, settings: Settings, tenant_id: str, jobs: list[Job]) -> list[Job]:
    """Seal v2 keeps a person's document number out of the signed ``ar`` block; ARCA is sent it, read
    from the buyer's subject (still readable when restricted: the tax obligation is what kept it)."""
    hidden = [job.invoice_id for job in jobs if job.ar.get("doc_number") is None]
    if not hidden:
        return jobs
    shown = await reveal_buyers(session, settings, tenant_id, await InvoiceRepository(session).many(hidden),
                                purpose="authority")
    out = []
    for job in jobs:
        if job.ar.get("doc_number") is None:
            buyer = (shown.get(job.invoice_id) or {}).get("buyer")
            if buyer is None:  # only if its key was shredded before ARCA was ever reached: an operator's case
                raise Transient(f"{job.fiscal_number}: the buyer's document number cannot be read")
            job = replace(job, ar={**job.ar, "doc_number": buyer["doc_number"]})
        out.append(job)
    return out


async def _lookup(call: Any) -> Any:
    """A question to ARCA (FECompConsultar, FECompUltimoAutorizado) never gives a verdict on a receipt:
    an error in its answer is a reason to ask again later, not a refusal of what may hold a CAE."""
    try:
        return await call
    except Rejected as exc:
        raise Transient(f"ARCA could not answer a lookup: {exc}") from None


async def _authorise(db: Database, settings: Settings, jobs: list[Job]) -> None:
    first = jobs[0]
    try:
        endpoint = await arca.wsfe_endpoint(db, settings, first.tenant_id)
        if first.sent_before:
            ar = first.ar
            stored = await _lookup(endpoint.client.fe_comp_consultar(endpoint.auth, ar["point_of_sale"],
                                                                     ar["cbte_tipo"], ar["number"]))
            if stored is not None:  # the run was registered (its answer lost): the first settles, the rest follow
                await _settle_stored(db, first, stored)
                return
        await _mark_sent(db, jobs)
        try:
            results = await endpoint.client.fe_cae_solicitar_many(endpoint.auth, [job.ar for job in jobs])
        except NumberMismatch:  # and no receipt answered: about the first one
            await _explain_mismatch(db, first, endpoint)
            return
        except Rejected as exc:
            if len(jobs) > 1:
                # Refused as a whole, the run does not say which receipt is at fault: the first goes
                # again alone (it is marked as sent: asked about first), the rest after it.
                await _note(db, first, error_code="authority_unreachable", error=f"ARCA refused the request: {exc}"[:1000])
                raise RetryLater("ARCA refused a run of receipts: sending the first alone", 1.0) from None
            raise
        await _record(db, endpoint, jobs, results)
    except NotConfigured as exc:
        # Shown on the invoice and in /v1/sync/status; saving the credentials resyncs every waiting invoice.
        await _note(db, first, error_code="arca_not_configured", error=str(exc))
    except CertificateRejected as exc:
        await _note(db, first, error_code="arca_certificate_rejected", error=str(exc)[:1000])
    except TicketUnavailable as exc:
        await _note(db, first, error_code="arca_ticket_unavailable", error=str(exc)[:1000])
        raise RetryLater("WSAA holds a ticket we do not have", 600.0) from None
    except TokenRejected as exc:
        if exc.code == 600:  # the ticket expired or ARCA no longer knows it: log in again, then retry
            await arca.forget_ticket(db, first.tenant_id)
            raise RetryLater("ARCA refused the ticket (600): logging in again", 1.0) from None
        await _note(db, first, error_code="arca_cuit_not_represented", error=str(exc)[:1000])
    except Rejected as exc:  # the request of this one receipt, as a whole: ARCA registered nothing
        await _reject(db, first, "arca_rejected", exc.errors, exc.observations)
    except Transient as exc:
        log.warning("arca.unreachable", tenant_id=first.tenant_id, invoice_id=first.invoice_id, error=str(exc)[:500])
        await _note(db, first, error_code="authority_unreachable", error=UNREACHABLE)
        raise


async def _record(db: Database, endpoint: arca.Endpoint, jobs: list[Job], results: list[CaeResult]) -> None:
    """Each receipt's own outcome, matched by number, in order. After the first one ARCA did not
    approve, the numbers that follow cannot have been taken (ARCA still expects that one): they stay
    pending, held behind it (ARCA answers them 10016)."""
    by_number = {r.number: r for r in results}
    approved: list[tuple[Job, CaeResult]] = []
    for job in jobs:
        result = by_number.get(job.ar["number"])
        if result is None:  # not answered (never seen): marked as sent, asked about when its turn comes
            log.warning("arca.short_answer", tenant_id=job.tenant_id, invoice_id=job.invoice_id)
            break
        if result.result == "A":
            approved.append((job, result))
            continue
        await _acknowledge_many(db, approved)
        own = [(c, m) for c, m in result.errors if c != NUMBER_MISMATCH]
        if result.observations or own:
            await _reject(db, job, "arca_rejected", own, result.observations)
        else:  # refused for its number or date alone: ask ARCA which, as for a single receipt
            await _explain_mismatch(db, job, endpoint)
        return
    await _acknowledge_many(db, approved)


async def _explain_mismatch(db: Database, job: Job, endpoint: arca.Endpoint) -> None:
    """10016: the number or the date is not the next ARCA expects. Ask ARCA which, never guess.

    A receipt ARCA holds under our number is adopted only if ours was sent before this attempt (its
    answer lost): sent for the first time and refused, the number is someone else's, however alike
    the two receipts look (a kiosk's identical sales to consumidor final)."""
    ar, client, auth = job.ar, endpoint.client, endpoint.auth
    stored = await _lookup(client.fe_comp_consultar(auth, ar["point_of_sale"], ar["cbte_tipo"], ar["number"]))
    if stored is not None and job.sent_before:
        await _settle_stored(db, job, stored)
        return
    last = await _lookup(client.fe_comp_ultimo_autorizado(auth, ar["point_of_sale"], ar["cbte_tipo"]))
    number = ar["number"]
    if stored is not None or last >= number:
        code, detail = "arca_number_taken", (
            f"ARCA already holds number {number} of this series for another receipt (last {last}): another "
            "system issues on this point of sale")
    elif last == number - 1:
        code, detail = "arca_date_rejected", (
            f"ARCA expects number {number} but refuses its date {ar['date']} (older than the last authorised "
            "receipt of the series, or outside ARCA's window)")
    else:
        code, detail = "arca_number_gap", f"ARCA's last number of this series is {last}: it expects {last + 1}"
    await _reject(db, job, code, [(NUMBER_MISMATCH, detail)], [])


def matches(stored: StoredReceipt, ar: dict[str, Any]) -> bool:
    """Whether what ARCA holds under our number is this receipt (the fields a second system would differ in)."""
    return (stored.cbte_tipo == ar["cbte_tipo"] and stored.point_of_sale == ar["point_of_sale"]
            and stored.total is not None and Decimal(stored.total) == Decimal(ar["imp_total"])
            and stored.date == date.fromisoformat(ar["date"])
            and int(stored.doc_number or 0) == int(ar["doc_number"] or 0))


async def _settle_stored(db: Database, job: Job, stored: StoredReceipt) -> None:
    if matches(stored, job.ar) and stored.cae and stored.result in (None, "A"):
        await acknowledge(db, job, stored.cae, stored.cae_due, stored.observations, None)
    else:
        await _reject(db, job, "arca_number_taken", [(10016, (
            f"ARCA holds number {job.ar['number']} of this series for a receipt that is not this one (total "
            f"{stored.total}, date {stored.date})"))], [])


def _codes(pairs: list[tuple[int, str]]) -> list[dict[str, Any]]:
    return [{"code": code, "message": message} for code, message in pairs]


async def _note(db: Database, job: Job, **values: Any) -> None:
    """Only while pending: a late writer never overwrites an outcome."""
    async with db.transaction() as session:
        await bind_tenant(session, job.tenant_id)
        await AuthorityRepository(session).update_pending(job.invoice_id, updated_at=utcnow(), **values)


async def _mark_sent(db: Database, jobs: list[Job]) -> None:
    async with db.transaction() as session:
        await bind_tenant(session, jobs[0].tenant_id)
        repo, now = AuthorityRepository(session), utcnow()
        for job in jobs:
            await repo.update_pending(job.invoice_id, uid=_sent_mark(job.ar["number"]), updated_at=now)


async def _wake_next(session: Any, job: Job) -> None:
    """The next number of the series waits for this outcome: queue it in the same transaction."""
    following = await AuthorityRepository(session).series_neighbour(job.series_id, job.ar["number"] + 1)
    if following is not None and following[1].status == "pending":
        enqueue(session, job.tenant_id, "authority.sync", {"invoice_id": following[0]})


async def acknowledge(db: Database, job: Job, cae: str, cae_due: date | None,
                      observations: list[tuple[int, str]], processed_at: str | None) -> None:
    await _acknowledge_many(db, [(job, CaeResult(result="A", cae=cae, cae_due=cae_due, number=job.ar["number"],
                                                 processed_at=processed_at, observations=observations))])


async def _acknowledge_many(db: Database, approved: list[tuple[Job, CaeResult]]) -> None:
    """Store the CAEs of consecutive receipts in one transaction, and wake the receipt after the last."""
    if not approved:
        return
    tenant_id = approved[0][0].tenant_id
    async with db.transaction() as session:
        await bind_tenant(session, tenant_id)
        repo, now, outcomes = AuthorityRepository(session), utcnow(), Outcomes(session)
        for job, result in approved:
            row = await repo.sync_row(job.invoice_id, lock=True)
            if row.status == "acknowledged":  # a concurrent delivery of the same event got here first
                continue
            # Rejected meanwhile (a realignment while this answer was on its way): ARCA holds the CAE, so
            # the receipt is authorised after all; said loudly, the merchant may have issued it again.
            late = row.status == "rejected"
            if late:
                log.warning("arca.authorised_after_rejection", tenant_id=tenant_id, invoice_id=job.invoice_id,
                            error_code=row.error_code)
                await outcomes.add(tenant_id, row.outlet_id, row.sealed_at, "rejected", row.updated_at, sign=-1)
            await outcomes.add(tenant_id, row.outlet_id, row.sealed_at, "acknowledged", now)
            arca_qr = qr_url(job.ar, job.seller_cuit, result.cae)
            details = {"result": "A", "cae_due": result.cae_due.isoformat() if result.cae_due else None,
                       "observations": _codes(result.observations), "arca_qr_url": arca_qr}
            session.add(AuthorityAck(
                tenant_id=tenant_id, invoice_id=job.invoice_id, nim=f"{job.ar['point_of_sale']:05d}", uid=None,
                code=result.cae, counters=None, authority_time=result.processed_at, qr_code=arca_qr,
                raw=json.dumps({"cae": result.cae, **details}), created_at=now))
            row.status, row.error_code, row.error, row.details, row.updated_at = \
                "acknowledged", None, None, json.dumps(details), now
            sync_acknowledged(session, row.sealed_at, now)
            enqueue(session, tenant_id, "invoice.acknowledged", {
                "invoice_id": job.invoice_id, "authority_code": result.cae, "counters": None,
                "cae_due": details["cae_due"], **({"after_rejection": True} if late else {})})
        await outcomes.write()
        await session.flush()
        await _wake_next(session, approved[-1][0])


async def _reject(db: Database, job: Job, code: str, errors: list[tuple[int, str]],
                  observations: list[tuple[int, str]]) -> None:
    detail = "; ".join(f"{c}: {m}" for c, m in errors + observations) or "rejected without a reason"
    details = {"result": "R", "cae_due": None, "observations": _codes(observations), "errors": _codes(errors),
               "arca_qr_url": None}
    async with db.transaction() as session:
        await bind_tenant(session, job.tenant_id)
        repo, now = AuthorityRepository(session), utcnow()
        settled = await repo.settle_pending(job.invoice_id, status="rejected", error_code=code, error=detail[:1000],
                                            details=json.dumps(details), updated_at=now)
        if settled is None:
            return  # acknowledged meanwhile: keep that outcome
        await record(session, job.tenant_id, settled[0], settled[1], "rejected", now)
        enqueue(session, job.tenant_id, "invoice.sync_failed", {
            "invoice_id": job.invoice_id, "code": code, "detail": detail[:300], "status": "rejected"})
        await _wake_next(session, job)
