"""Monthly bills: the issuer, drafts, finalisation into a sealed fiscal invoice, and their reads.

Use cases take the session (bound by the caller: to the billed tenant unless said otherwise) and flush,
never commit. ``bill_tasks`` owns the transactions of the cycle (one per billed tenant).

The seal happens in the billed tenant's bill transaction: the bill row is locked first (billed
tenant's binding), then the session is re-bound to the issuer and ``seal_many`` takes the issuer's
Merkle log lock and series lock (the order of ``fiscal/invoices/sealing.py``), then re-bound to the
billed tenant to record the invoice on the bill. Every finalisation takes its bill row before the
issuer's log, and nothing that holds an issuer's log lock ever waits for a bill row, so there is no
lock cycle; and the bill and its invoice commit together, so a crash leaves both or neither. The
seal still carries an Idempotency-Key derived from (billed tenant, period): a seal that was
committed without its bill (an older run, a hand-made seal) is replayed, never sealed twice.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from stalela.auth.principal import Principal
from stalela.billing import bill_lines as bl
from stalela.billing import exchange_service, rating, rating_service, usage_service
from stalela.billing.bill_models import Bill
from stalela.billing.bill_repository import BillRepository, IssuerRepository
from stalela.config import Settings
from stalela.db.base import utcnow
from stalela.errors import Conflict, NotFound, StalelaError, ValidationFailed
from stalela.fiscal.invoices import service as invoices
from stalela.fiscal.invoices.schemas import InvoiceCreate
from stalela.fiscal.jurisdictions import get_jurisdiction
from stalela.kit.ids import new_id
from stalela.kit.money import decimal_str, money_str
from stalela.observability.logging import get_logger
from stalela.tenancy.repository import OutletRepository, TenantRepository
from stalela.tenancy.context import acting_as, bind_tenant, current_tenant

log = get_logger("stalela.billing.bills")


# --- usage and rating --------------------------------------------------------------------------------


async def _rated_lines(session: AsyncSession, tenant_id: str, period: str,
                       card: rating.RateCardView | None = None) -> list[bl.Rated]:
    """The tenant's usage of ``period`` rated with ``card``, by default its plan's card in force on the
    period's first day (a new card applies from the next whole period): one line per resource with usage,
    each carrying the event count, the SHA-256 of the sorted event ids and the days it was computed from.
    No usage needs no card (a tenant whose plan has none yet is billed nothing, not refused)."""
    start, end = bl.period_bounds(period)
    async with acting_as(session, tenant_id):
        usage = await usage_service.period_usage(session, tenant_id, start, end)
        if not usage:
            return []
        card = card or await rating_service.card_for(session, tenant_id, start)
    out = []
    for name, used in sorted(usage.items()):
        line = rating.cost_line(card, name, used.quantity)
        out.append(bl.Rated(name, used.quantity, line.amount, line.currency, line.plan_id, line.rate_card_version,
                            used.event_count, used.events_sha256,
                            [{"day": d.day, "quantity": d.quantity, "event_count": d.event_count,
                              "events_digest": d.events_digest} for d in used.days]))
    return out


# --- the issuer ------------------------------------------------------------------------------------


async def get_issuer(session: AsyncSession) -> dict[str, Any]:
    row = await IssuerRepository(session).get()
    if row is None:
        raise NotFound("no billing issuer is configured (stalela billing issuer)", code="billing_issuer_not_found")
    return {"tenant_id": row.issuer_tenant_id, "outlet_id": row.issuer_outlet_id, "updated_at": row.updated_at}


async def set_issuer(session: AsyncSession, tenant_id: str, outlet_id: str) -> dict[str, Any]:
    """Platform-bound session. The issuer must be an active tenant with an active outlet, in a
    jurisdiction whose platform invoice we know how to write (bill_lines.PROFILES)."""
    tenant = await TenantRepository(session).get(tenant_id)
    if tenant is None:
        raise ValidationFailed("no such tenant", code="tenant_not_found", field="tenant_id")
    if tenant.status != "active":
        raise Conflict("the issuer must be an active tenant", code="tenant_not_active", field="tenant_id")
    if tenant.jurisdiction not in bl.PROFILES:
        raise ValidationFailed(f"bills cannot be issued from jurisdiction {tenant.jurisdiction} yet",
                               code="billing_issuer_jurisdiction_unsupported", field="tenant_id")
    async with acting_as(session, tenant_id):  # the outlet is in the tenant's own database if it has one
        outlet = await OutletRepository(session).get_in_tenant(tenant_id, outlet_id)
    if outlet is None:
        raise ValidationFailed("no such outlet of this tenant", code="outlet_not_found", field="outlet_id")
    if outlet.status != "active":
        raise Conflict("the outlet is not active", code="outlet_inactive", field="outlet_id")
    await IssuerRepository(session).put(tenant_id, outlet_id, utcnow())
    return await get_issuer(session)


# --- drafts ----------------------------------------------------------------------------------------


async def draft(session: AsyncSession, settings: Settings, tenant_id: str, period: str,
                now: datetime | None = None) -> Bill:
    """The tenant's bill of a period that has ended: created once (the unique index decides), then
    refreshed while it is a draft. A closed bill is returned as it is."""
    now = now or utcnow()
    bill = await _locked(session, settings, tenant_id, period, now)
    if bill.status == "draft":
        await _refresh(session, bill, now)
    return bill


async def _locked(session: AsyncSession, settings: Settings, tenant_id: str, period: str, now: datetime) -> Bill:
    """The (tenant, period) bill, inserted as an empty draft unless it exists (the unique index decides, so
    a crash and its re-run leave one), locked until the transaction ends."""
    if bl.period_end(period) > now:
        raise Conflict(f"period {period} has not ended", code="billing_period_open", field="period")
    repo = BillRepository(session)
    await repo.insert_draft(dict(
        tenant_id=tenant_id, id=new_id("bill"), period=period, status="draft", currency="", total_cents=0,
        lines="[]", finalize_after=bl.period_end(period) + timedelta(hours=settings.billing_grace_hours),
        created_at=now, updated_at=now))
    return await repo.of_period(period, lock=True)


async def hold(session: AsyncSession, settings: Settings, tenant_id: str, period: str, reason: str,
               now: datetime | None = None) -> None:
    """Record on the draft why it could not be drafted or sealed (``code: detail``): the operator's
    revenue view and the tenant's bill show it until a later run seals it. A closed bill is left alone."""
    now = now or utcnow()
    if bl.period_end(period) > now:
        return  # nothing to hold: the period is still open
    bill = await _locked(session, settings, tenant_id, period, now)
    if bill.status == "draft":
        bill.pending_reason, bill.updated_at = reason[:500], now
        await session.flush()


def due(bill: Bill, now: datetime, force: bool = False) -> bool:
    """A draft whose grace has passed (``force``: any draft) is sealed by the next finalisation."""
    return bill.status == "draft" and (force or bill.finalize_after <= now)


async def _refresh(session: AsyncSession, bill: Bill, now: datetime) -> None:
    lines, currency = await _lines(session, bill.tenant_id, bill.period)
    bill.lines = json.dumps(lines, sort_keys=True)
    bill.total_cents = bl.billed_total(lines)
    bill.currency = currency or bill.currency or ""
    bill.updated_at = now
    await session.flush()


async def _lines(session: AsyncSession, tenant_id: str, period: str) -> tuple[list[dict[str, Any]], str | None]:
    """The period's usage lines, then adjustments and credits of the closed periods before it.

    A closed period is re-rated with the card that priced it (the ``plan_id`` and ``rate_card_version``
    its closed lines record), never with the tenant's current plan: a plan change or a new version
    re-prices no sealed period, only late usage and voids change what it owes. A closed period that
    priced nothing (no usage at the time) has no recorded card: its late usage is rated like a period
    never billed, by the card in force on its first day."""
    rated = await _rated_lines(session, tenant_id, period)
    lines = [bl.usage_line("usage", period, r, r.amount) for r in sorted(rated, key=lambda r: r.resource)]
    currency = rated[0].currency if rated else None
    repo = BillRepository(session)
    oldest = bl.previous_period(period, bl.LOOKBACK_PERIODS)
    closed = [b for b in await repo.closed_since(oldest) if b.period < period]
    closed_lines = [line for b in closed for line in json.loads(b.lines)]
    for back in range(bl.LOOKBACK_PERIODS, 0, -1):
        earlier = bl.previous_period(period, back)
        if not any(b.period == earlier for b in closed):
            continue  # never billed (the tenant is new) or still a draft: nothing to adjust yet
        recorded = bl.card_of(closed_lines, earlier)
        card = await rating_service.card_version(session, *recorded) if recorded else None
        current = await _rated_lines(session, tenant_id, earlier, card)
        found = card.currency if card else (current[0].currency if current else None)
        more = bl.differences(earlier, current, bl.billed_for(closed_lines, earlier))
        if currency and found and found != currency and any(line["kind"] == "adjustment" for line in more):
            # A bill has one currency; credits are converted on their own (at their invoice's rate).
            raise Conflict(f"late usage of {earlier} is priced in {found}, this bill in {currency}: the tenant "
                           "changed to a plan of another currency", code="billing_adjustment_currency_mismatch")
        currency = currency or found
        lines += more
    return lines, currency


# --- finalisation ----------------------------------------------------------------------------------


@dataclass
class _Issuer:
    tenant_id: str
    outlet_id: str
    jurisdiction: str
    profile: bl.Profile


def system_principal(issuer: _Issuer) -> Principal:
    """Who seals the platform's bills: the issuer tenant itself, every scope, no outlet restriction."""
    return Principal(kind="api_key", tenant_id=issuer.tenant_id, api_key_id=bl.SYSTEM_KEY_ID, tenant_status="active",
                     jurisdiction=issuer.jurisdiction)


async def finalize(session: AsyncSession, settings: Settings, tenant_id: str, period: str, *,
                   now: datetime | None = None, force: bool = False) -> Bill:
    """Seal the tenant's draft of ``period`` once its grace has passed (``force``: now). A bill with
    nothing to bill becomes ``empty`` without an invoice (its credits, if any, are still sealed). A
    closed bill is returned unchanged."""
    now = now or utcnow()
    bill = await draft(session, settings, tenant_id, period, now)
    if not due(bill, now, force):
        return bill
    lines = json.loads(bill.lines)
    invoice_id = invoice_total = issuer = conversion = None
    if bill.total_cents > 0 or any(line["kind"] == "credit" and not line.get("invoice_id") for line in lines):
        buyer_tenant = await TenantRepository(session).get(tenant_id)
        buyer = {"name": buyer_tenant.name, "tax_id": buyer_tenant.tax_id}
        try:
            issuer = await _issuer(session, tenant_id)
            # Only the bill's own lines are converted at its period's rate: a bill of credits alone needs none.
            conversion = await _conversion(session, issuer, bill) if bill.total_cents > 0 else None
            bl.convert_lines([line for line in lines if line["kind"] != "credit"], conversion)
            lines, credits = await _credits(session, issuer, bill, lines)
            invoice_id, invoice_total = await _seal(session, settings, issuer, bill, lines, credits, buyer, conversion)
        finally:
            await bind_tenant(session, tenant_id)
    bill.lines = json.dumps(lines, sort_keys=True)
    bill.status = "sealed" if invoice_id else "empty"
    bill.issuer_tenant_id = issuer.tenant_id if issuer else None
    bill.invoice_id, bill.invoice_total_cents = invoice_id, invoice_total
    bill.invoice_currency = get_jurisdiction(issuer.jurisdiction).currency if issuer else None
    bill.exchange_rate = decimal_str(conversion.rate) if conversion else None
    bill.pending_reason = None
    bill.sealed_at = bill.updated_at = now
    await session.flush()
    for plan_id, version in bl.rate_cards(lines):
        await rating_service.mark_used(session, plan_id, version)
    if conversion is not None:
        await exchange_service.mark_used(session, bill.period, conversion.currency, conversion.invoice_currency)
    return bill


async def _issuer(session: AsyncSession, billed_tenant_id: str) -> _Issuer:
    row = await IssuerRepository(session).get()
    if row is None:
        raise Conflict("no billing issuer is configured (stalela billing issuer)", code="billing_issuer_not_found")
    if row.issuer_tenant_id == billed_tenant_id:
        raise Conflict("the issuer does not bill itself", code="billing_issuer_is_billed")
    # From here on the session is the issuer's (row-level security shows a tenant only its own row).
    await bind_tenant(session, row.issuer_tenant_id)
    tenant = await TenantRepository(session).get(row.issuer_tenant_id)
    if tenant is None or tenant.status != "active" or tenant.jurisdiction not in bl.PROFILES:
        raise Conflict("the billing issuer is not an active tenant of a supported jurisdiction",
                       code="billing_issuer_unusable")
    return _Issuer(row.issuer_tenant_id, row.issuer_outlet_id, tenant.jurisdiction, bl.PROFILES[tenant.jurisdiction])


async def _conversion(session: AsyncSession, issuer: _Issuer, bill: Bill) -> bl.Conversion | None:
    """How the bill's amounts become the issuer's invoice currency: not at all when the plan is priced in
    it, else at the operator's rate of the bill's period. Credit notes are not: each is converted at the
    rate of the invoice it credits (``_credits``), the rate of the period it corrects."""
    invoice_currency = get_jurisdiction(issuer.jurisdiction).currency
    if bill.currency == invoice_currency:
        return None
    rate = await exchange_service.rate_for(session, bill.period, bill.currency, invoice_currency)
    return bl.Conversion(bill.currency, invoice_currency, rate)


@dataclass
class _Credit:
    line: dict[str, Any]  # one part of a credit line, against one invoice
    original: Any  # the credited Invoice
    conversion: bl.Conversion | None  # the rate that invoice was converted at


async def _credits(session: AsyncSession, issuer: _Issuer, bill: Bill, lines: list[dict[str, Any]]
                   ) -> tuple[list[dict[str, Any]], list[_Credit]]:
    """On the issuer's binding: each credit line not yet issued, split across the issuer's invoices that
    billed its usage (``bill_lines.split_credit``). Returns the bill's lines with the parts in place of
    the line, and the credit notes to seal. What no invoice can take any more is left out and logged:
    the next bill's difference retries it, it never blocks a bill."""
    out: list[dict[str, Any]] = []
    credits: list[_Credit] = []
    repo = IssuerRepository(session)
    invoice_currency = get_jurisdiction(issuer.jurisdiction).currency
    for line in lines:
        if line["kind"] != "credit" or line.get("invoice_id"):
            out.append(line)
            continue
        sources = await _creditable(session, bill.tenant_id, issuer.tenant_id, line)
        parts = bl.split_credit(line, sources)
        conversions = {s.invoice_id: s.conversion for s in sources}
        for part in parts:
            found = await repo.invoice(issuer.tenant_id, part["original_invoice_id"])
            part["original"], part["invoice_currency"] = found.fiscal_number, invoice_currency
            credits.append(_Credit(part, found, conversions[part["original_invoice_id"]]))
        out += parts
        left = Decimal(line["amount"]) - sum((Decimal(p["amount"]) for p in parts), bl.ZERO)
        if left > 0:
            log.warning("bill_credit_not_creditable", tenant_id=bill.tenant_id, period=bill.period,
                        resource=line["resource"], period_of=line["period_of"], amount=money_str(left))
    return out, credits


async def _creditable(session: AsyncSession, tenant_id: str, issuer_tenant_id: str, credit: dict[str, Any]
                      ) -> list[bl.Creditable]:
    """Each of the issuer's sealed invoices that billed the credit's (resource, period), newest first, with
    what it billed and what earlier credit notes already took back from it (read on the billed tenant's
    binding, then the caller's binding is restored)."""
    async with acting_as(session, tenant_id):
        bills = await BillRepository(session).closed_since(credit["period_of"])
    def same(line: dict[str, Any]) -> bool:
        return line["resource"] == credit["resource"] and line["period_of"] == credit["period_of"]
    sources: dict[str, bl.Creditable] = {}
    for b in bills:
        if not b.invoice_id or b.issuer_tenant_id != issuer_tenant_id:
            continue
        conversion = bl.Conversion(b.currency, b.invoice_currency, Decimal(b.exchange_rate)) if b.exchange_rate else None
        for line in json.loads(b.lines):
            if line["kind"] != "credit" and same(line) and Decimal(line.get("invoice_amount") or 0) > 0:
                sources[b.invoice_id] = bl.Creditable(b.invoice_id, conversion, Decimal(line["amount"]),
                                                      Decimal(line["invoice_amount"]))
    for b in bills:
        for line in json.loads(b.lines):
            source = sources.get(line.get("original_invoice_id") or "")
            if line["kind"] == "credit" and line.get("invoice_id") and same(line) and source is not None:
                sources[source.invoice_id] = replace(
                    source, credited=source.credited + Decimal(line["amount"]),
                    credited_invoice=source.credited_invoice + Decimal(line.get("invoice_amount") or line["amount"]))
    return list(reversed(sources.values()))


async def _seal(session: AsyncSession, settings: Settings, issuer: _Issuer, bill: Bill, lines: list[dict[str, Any]],
                credits: list[_Credit], buyer: dict[str, str], conversion: bl.Conversion | None
                ) -> tuple[str | None, int | None]:
    """On the issuer's binding: the credit notes, then the bill's invoice, in one group, in the invoice
    currency (lines carry their ``invoice_amount``). Fills each credit line's ``invoice_id``; returns the
    bill's (invoice id, total with taxes), or Nones."""
    currency = get_jurisdiction(issuer.jurisdiction).currency
    requests: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
    for credit in credits:
        body = bl.credit_body(issuer.profile, credit.original.outlet_id, currency, buyer, credit.original.fiscal_number,
                              credit.line, credit.conversion)
        requests.append((bl.credit_key(bill.tenant_id, bill.period, credit.line), body, credit.line))
    if bl.invoice_lines(lines):
        body = bl.invoice_body(issuer.profile, issuer.outlet_id, currency, buyer, bill.id, lines, conversion)
        requests.append((bl.bill_key(bill.tenant_id, bill.period), body, None))
    if not requests:
        return None, None
    principal = system_principal(issuer)
    outcomes = await invoices.seal_many(session, settings, issuer.tenant_id, [
        invoices.SealRequest(principal, InvoiceCreate.model_validate(body), key) for key, body, _ in requests])
    sealed: tuple[str | None, int | None] = (None, None)
    for (_, _, credit), outcome in zip(requests, outcomes):
        if isinstance(outcome, StalelaError):
            raise outcome
        if credit is not None:
            credit["invoice_id"] = outcome.body["id"]
        else:
            sealed = (outcome.body["id"], bl.cents(outcome.body["totals"]["total"]))
    return sealed


# --- reads -----------------------------------------------------------------------------------------


def summary(bill: Bill) -> dict[str, Any]:
    return {"id": bill.id, "period": bill.period, "status": bill.status, "total": money_str(bill.total_cents / bl.CENTS),
            "currency": bill.currency, "invoice_id": bill.invoice_id}


def detail(bill: Bill) -> dict[str, Any]:
    lines = json.loads(bill.lines)
    return {
        **summary(bill),
        "finalize_after": bill.finalize_after, "sealed_at": bill.sealed_at, "created_at": bill.created_at,
        **_invoice_figures(bill), "exchange_rate": bill.exchange_rate,
        "lines": [{k: v for k, v in line.items() if k not in ("days", "events_sha256", "event_count")}
                  for line in lines if line["kind"] != "credit"],
        "credit_notes": [{k: line.get(k) for k in ("resource", "period_of", "amount", "invoice_amount", "invoice_id",
                                                   "original", "exchange_rate")}
                         for line in lines if line["kind"] == "credit"],
    }


def _invoice_figures(bill: Bill) -> dict[str, Any]:
    """The sealed invoice's currency and total (taxes included) beside the bill's own (the plan's currency,
    before taxes), and why a draft is not sealed yet."""
    return {"invoice_currency": bill.invoice_currency, "pending_reason": bill.pending_reason,
            "invoice_total": money_str(bill.invoice_total_cents / bl.CENTS)
            if bill.invoice_total_cents is not None else None}


async def list_bills(session: AsyncSession, *, limit: int, starting_after: str | None
                     ) -> tuple[list[dict[str, Any]], bool]:
    rows, more = await BillRepository(session).page(None, limit=limit, starting_after=starting_after)
    return [summary(b) for b in rows], more


async def get_bill(session: AsyncSession, bill_id: str) -> Bill:
    bill = await BillRepository(session).get(bill_id)
    if bill is None:
        raise NotFound("no such bill", code="bill_not_found")
    return bill


async def bill_with_invoice(session: AsyncSession, settings: Settings, bill_id: str) -> dict[str, Any]:
    """The bill and, once sealed, its invoice with ``seal``. The invoice is the issuer's: read on the
    platform binding, by the (issuer, id) the caller's own bill names, so nothing else is reachable."""
    bill = await get_bill(session, bill_id)
    out = detail(bill)
    out["invoice"] = None
    if bill.invoice_id:
        # The issuer's invoice, in the issuer's database (a dedicated issuer's is its own).
        async with acting_as(session, bill.issuer_tenant_id):
            found = await IssuerRepository(session).invoice(bill.issuer_tenant_id, bill.invoice_id)
            if found is not None:
                [out["invoice"]] = await invoices.render_many(session, settings, [found])
    return out


async def bill_pdf(session: AsyncSession, settings: Settings, bill_id: str) -> tuple[str, bytes]:
    bill = await get_bill(session, bill_id)
    if not bill.invoice_id:
        raise NotFound("this bill has no sealed invoice yet", code="bill_not_sealed")
    issuer = Principal(kind="api_key", tenant_id=bill.issuer_tenant_id, api_key_id=bl.SYSTEM_KEY_ID)
    async with acting_as(session, bill.issuer_tenant_id):
        return await invoices.invoice_pdf(session, settings, issuer, bill.invoice_id)


def bill_usage(bill: Bill) -> dict[str, Any]:
    """Per line, what a tenant needs to recompute it from its own event export (docs/billing.md)."""
    return {"id": bill.id, "period": bill.period, "currency": bill.currency, "data": [
        {k: line.get(k) for k in ("kind", "resource", "period_of", "quantity", "amount", "invoice_amount", "plan_id",
                                  "rate_card_version", "event_count", "events_sha256", "days")}
        for line in json.loads(bill.lines) if line["kind"] != "credit"]}


async def estimate(session: AsyncSession, now: datetime | None = None) -> dict[str, Any]:
    """The current period so far, rated as a bill would be (no adjustments: they are decided at its end)."""
    period = bl.period_of(now or utcnow())
    rated = await _rated_lines(session, current_tenant(session), period)
    lines = [bl.usage_line("usage", period, r, r.amount) for r in rated]
    return {"period": period, "currency": rated[0].currency if rated else None,
            "total": money_str(bl.billed_total(lines) / bl.CENTS),
            "lines": [{k: line[k] for k in ("resource", "quantity", "amount", "plan_id", "rate_card_version")}
                      for line in lines]}


async def revenue(session: AsyncSession, period: str) -> list[dict[str, Any]]:
    """Platform-bound: every tenant's bill of ``period``, largest first (the operator console)."""
    return [{"tenant_id": bill.tenant_id, "tenant_name": name, **summary(bill), **_invoice_figures(bill)}
            for bill, name in await BillRepository(session).of_all_tenants(bl.check_period(period))]
