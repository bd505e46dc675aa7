"""An Argentine tenant's series and ARCA's numbering: alignment before a series' first receipt, and the
explicit realignment of a held series (docs/jurisdictions/ar-operations.md)."""
from __future__ import annotations

import json
from typing import Any

from stalela.audit.service import record
from stalela.auth.principal import Principal
from stalela.authority.arca import service as arca
from stalela.authority.arca.agent import Job, acknowledge, log, matches, with_documents
from stalela.authority.arca.errors import (
    CertificateRejected,
    NotConfigured,
    Rejected,
    TicketUnavailable,
    TokenRejected,
    Transient,
)
from stalela.authority.outcomes import Outcomes
from stalela.authority.repository import AuthorityRepository
from stalela.config import Settings
from stalela.db.base import utcnow
from stalela.db.session import Database
from stalela.errors import Conflict, NotFound, ServiceUnavailable, ValidationFailed
from stalela.fiscal.invoices.repository import SeriesRepository
from stalela.fiscal.jurisdictions import get_jurisdiction
from stalela.fiscal.ledger.repository import MerkleRepository
from stalela.outbox.service import enqueue
from stalela.tenancy.context import bind_tenant
from stalela.tenancy.repository import OutletRepository


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
        settled = await _settle_waiting(db, settings, endpoint, principal.tenant_id, outlet_id, invoice_type, last)
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
        acknowledged, refused = await AuthorityRepository(session).series_standing(current.id)
        if acknowledged is not None and acknowledged > last:
            # Authorised meanwhile (between ARCA's answer and this lock): a new generation from `last`
            # would hand out numbers ARCA now holds.
            raise Conflict(f"number {acknowledged} was authorised after ARCA said {last}: ask again",
                           code="series_moved")
        if refused is None:
            # Only a series a refusal holds is realigned: a backlog waiting for ARCA is not stuck.
            raise Conflict("no receipt of this series was refused after its last authorised one: it is not held "
                           "(receipts may still be waiting for ARCA; see their sync errors)", code="series_not_held")
        now = utcnow()
        stranded = await AuthorityRepository(session).pending_in_series(current.id, 0)
        if any(row.claimed_until is not None and row.claimed_until > now for _, row in stranded):
            raise Conflict("a receipt of this series is being sent to ARCA right now: retry in a minute",
                           code="series_busy", headers={"Retry-After": "60"})
        old, new = await SeriesRepository(session).supersede(principal.tenant_id, outlet_id, invoice_type, last)
        detail = (f"the series was realigned on ARCA's last number {last}: this receipt can no longer be "
                  "authorised under its number; issue the sale again")
        outcomes = Outcomes(session)
        for invoice_id, row in stranded:
            row.status, row.error_code, row.error, row.updated_at = "rejected", "series_realigned", detail, now
            await outcomes.add(principal.tenant_id, row.outlet_id, row.sealed_at, "rejected", now)
            row.details = json.dumps({"result": None, "cae_due": None, "observations": [], "errors": [],
                                      "arca_qr_url": None})
            enqueue(session, principal.tenant_id, "invoice.sync_failed", {
                "invoice_id": invoice_id, "code": "series_realigned", "detail": detail[:300], "status": "rejected"})
        await outcomes.write()
        outcome = {"outlet_id": outlet_id, "type": invoice_type, "arca_last": last,
                   "previous": {"series_id": old.id, "generation": old.generation, "last_number": old.counter},
                   "series": {"series_id": new.id, "generation": new.generation, "next_number": last + 1},
                   "acknowledged": settled, "rejected": [invoice_id for invoice_id, _ in stranded]}
        await record(session, principal.tenant_id, principal.actor, "arca.series_realigned", new.id, outcome)
    return outcome


async def _settle_waiting(db: Database, settings: Settings, endpoint: arca.Endpoint, tenant_id: str, outlet_id: str,
                          invoice_type: str,
                          last: int) -> list[str]:
    """Acknowledge the series' waiting receipts that were sent and that ARCA holds as they were sealed (their
    answer was lost); their ids. One never sent cannot be the receipt ARCA holds, however alike."""
    async with db.transaction(readonly=True) as session:
        await bind_tenant(session, tenant_id)
        series = await SeriesRepository(session).current(outlet_id, invoice_type)
        waiting = [] if series is None else await AuthorityRepository(session).waiting_in_series(series.id, last)
        # With the buyer's document number where seal v2 keeps it off the payload (what ARCA holds).
        jobs = await with_documents(session, settings, tenant_id, [
            Job(tenant_id, invoice_id, payload["series_id"], payload["fiscal_number"], payload["ar"],
                payload["seller_tax_id"], sent_before=True) for invoice_id, payload in waiting])
    settled = []
    for job in jobs:
        ar, invoice_id = job.ar, job.invoice_id
        stored = await endpoint.client.fe_comp_consultar(endpoint.auth, ar["point_of_sale"], ar["cbte_tipo"],
                                                         ar["number"])
        if stored is not None and matches(stored, ar) and stored.cae:
            await acknowledge(db, job, stored.cae, stored.cae_due, stored.observations, None)
            settled.append(invoice_id)
    return settled
