"""Z and X reports: close a business day (sealed, chained, numbered), show the open day, rebuild figures.

A close runs in the caller's transaction under the outlet's series lock, the same lock every seal of
the outlet takes: no invoice can slip into a day while it is being closed, and two closers of one
day (API, scheduler, CLI, several processes) queue there; the second finds the first's Z and returns
it. The unique index on (tenant, outlet, business day) is the backstop.
"""
from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, AsyncIterator

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from stalela.auth.principal import Principal
from stalela.config import Settings
from stalela.db.base import utcnow
from stalela.errors import Conflict, Forbidden, NotFound, ValidationFailed
from stalela.fiscal.core.reports import DayResolver, Figures, ZBoundary, local_date
from stalela.fiscal.core.seal import build_seal, canonical_bytes, verify_seal
from stalela.fiscal.invoices.figures import day_position, dump, load
from stalela.fiscal.invoices.models import DayFigures, Invoice
from stalela.fiscal.invoices.offline_merge import merged_day
from stalela.fiscal.invoices.repository import DayFiguresRepository, SeriesRepository
from stalela.fiscal.invoices.verification import Verified
from stalela.fiscal.jurisdictions import get_jurisdiction
from stalela.fiscal.ledger.models import Checkpoint
from stalela.fiscal.ledger.repository import MerkleRepository
from stalela.fiscal.ledger.service import create_checkpoint
from stalela.fiscal.reports.models import ZReport
from stalela.fiscal.reports.repository import ZReportRepository, invoice_pages
from stalela.fiscal.reports.voids import voided_on
from stalela.fiscal.signing import registry as keys
from stalela.fiscal.signing.repository import SigningKeyRepository
from stalela.i18n import tenant_language
from stalela.kit.clock import rfc3339
from stalela.kit.ids import new_id
from stalela.outbox.service import enqueue
from stalela.tenancy.models import Outlet, Tenant
from stalela.tenancy.repository import OutletRepository, TenantRepository

REPORT_VERSION = 1
ZERO_HASH = "0" * 64
# Payload fields that only matter to verifiers; the rest is repeated at the top of the API object.
_SEAL_ONLY = ("v", "report", "report_id", "key_id", "prev_hash")


def z_number(outlet_code: str, z_counter: int) -> str:
    return f"{outlet_code}-Z-{z_counter:06d}"


def _figures(row: DayFigures | None) -> Figures:
    return load(row.figures) if row is not None else Figures()


def _stored_grand(z: ZReport | None) -> Figures:
    return Figures.from_json(json.loads(z.payload)["grand_totals"]) if z is not None else Figures()


async def _outlet(session: AsyncSession, principal: Principal, outlet_id: str) -> Outlet:
    outlet = await OutletRepository(session).get(outlet_id)
    if outlet is None:
        raise NotFound("no such outlet", code="outlet_not_found")
    if not principal.can_use_outlet(outlet.id):
        raise Forbidden("this credential may not report on this outlet", code="api_key_outlet_restricted")
    return outlet


def _today(outlet: Outlet) -> date:
    return local_date(utcnow(), outlet.timezone)


async def _check_day(session: AsyncSession, outlet: Outlet, day: date, current: date, *, not_yet: str) -> None:
    """A report day lies between the outlet's first business day and ``current``: checked before any lock
    is taken or number consumed, so a wrong day (0928-08-20, next year) costs nothing."""
    opened = outlet.first_business_day
    if opened <= day <= current:
        return
    # A day that has sales is never refused, whatever the bounds say (a timezone change moves "today"):
    # refusing it would leave it open for ever, and every later day behind it (closes go in order).
    if await DayFiguresRepository(session).get(outlet.id, day) is not None:
        return
    if day > current:
        raise ValidationFailed(not_yet, code="business_day_in_future", field="business_day")
    raise ValidationFailed(f"{day} is before the outlet existed (its first business day is {opened})",
                           code="business_day_before_outlet", field="business_day",
                           extra={"first_business_day": opened.isoformat()})


async def _seal(
    session: AsyncSession, settings: Settings, kind: str, *, tenant: Tenant, outlet: Outlet, report_id: str,
    day: date, figures: Figures, grand: Figures, issued: datetime, z_counter: int | None = None,
    checkpoint: Checkpoint | None = None, prev_hash: str | None = None, voided: list[dict[str, Any]] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Build and sign a report payload: the same seal format as invoices (docs/seal-format.md)."""
    key = await keys.active_key(session, tenant.id)
    payload = {
        "v": REPORT_VERSION,
        "report": kind,
        "jurisdiction": tenant.jurisdiction,
        "tenant_id": tenant.id,
        "seller_tax_id": tenant.tax_id,
        "outlet_id": outlet.id,
        "outlet_code": outlet.code,
        "report_id": report_id,
        "z_counter": z_counter,
        "number": z_number(outlet.code, z_counter) if z_counter is not None else None,
        "business_day": day.isoformat(),
        "timezone": outlet.timezone,
        "issued_at": rfc3339(issued),
        "currency": get_jurisdiction(tenant.jurisdiction).currency,
        **figures.as_json(),
        "grand_totals": grand.as_json(),
        # Numbers of offline blocks voided (or reopened) on the day: never a silent gap (docs/offline.md).
        "voided": voided or [],
        "checkpoint": {"id": checkpoint.id, "tree_size": checkpoint.tree_size, "root_hash": checkpoint.root_hash,
                       "hash": checkpoint.seal_hash} if checkpoint is not None else None,
        "key_id": key.id,
        "prev_hash": prev_hash,
    }
    canonical = canonical_bytes(payload)
    return payload, build_seal(payload, await keys.sign(settings, key, canonical), key.id, canonical_payload=canonical)


# ------------------------------------------------------------------------------------------- Z


@dataclass
class CloseResult:
    z: ZReport
    created: bool


async def close_day(
    session: AsyncSession, settings: Settings, principal: Principal, outlet_id: str, day: date | None = None,
    *, closed_by: str = "api",
) -> CloseResult:
    """Close ``day`` (default: today in the outlet's timezone) with a Z report; idempotent."""
    reports = ZReportRepository(session)
    outlet = await _outlet(session, principal, outlet_id)
    today = _today(outlet)
    day = day or today
    await _check_day(session, outlet, day, today,
                     not_yet=f"{day} has not begun in {outlet.timezone} (today is {today})")
    existing = await reports.for_day(outlet.id, day)
    if existing is not None:
        return CloseResult(existing, False)

    # Held until the caller commits: seals of this outlet wait, and so does any other closer. The
    # tenant's log first, then the series: the order every sealer takes them in (sealing.py).
    await MerkleRepository(session).lock_log(outlet.tenant_id)
    await SeriesRepository(session).lock_for_outlet(outlet.tenant_id, outlet.id)
    existing = await reports.for_day(outlet.id, day)  # a racing closer may have won while we queued
    if existing is not None:
        return CloseResult(existing, False)
    last = await reports.latest(outlet.id)
    if last is not None and last.business_day > day:
        raise Conflict(f"{day} can no longer be closed: {last.business_day} is already closed",
                       code="business_day_passed", field="business_day")
    figures_repo = DayFiguresRepository(session)
    earlier = await figures_repo.open_days(outlet.id, before=day)
    if earlier:
        first = earlier[0].business_day.isoformat()
        raise Conflict(f"close {first} first: days are closed in order", code="earlier_day_open",
                       field="business_day", extra={"open_business_day": first})

    row = await figures_repo.get(outlet.id, day)
    figures = _figures(row)
    tenant = await TenantRepository(session).get(outlet.tenant_id)
    voided = await voided_on(session, outlet, last, day)
    checkpoint = await create_checkpoint(session, settings, outlet.tenant_id, "z_report")
    z_counter = (last.z_counter if last else 0) + 1
    report_id, now = new_id("zrp"), utcnow()
    payload, seal = await _seal(
        session, settings, "Z", tenant=tenant, outlet=outlet, report_id=report_id, day=day, figures=figures,
        grand=_stored_grand(last).merge(figures), issued=now, z_counter=z_counter, checkpoint=checkpoint,
        prev_hash=last.seal_hash if last else ZERO_HASH, voided=voided,
    )
    counter_to = figures.last_counter if figures.last_counter is not None else (last.counter_to if last else 0)
    z = ZReport(
        tenant_id=outlet.tenant_id, id=report_id, outlet_id=outlet.id, business_day=day, z_counter=z_counter,
        number=payload["number"], counter_to=counter_to, invoice_count=figures.invoices,
        total_cents=figures.net().total, closed_at=now, closed_by=closed_by,
        checkpoint_id=checkpoint.id, key_id=seal["key_id"], seal_hash=seal["hash"], signature=seal["signature"],
        payload=canonical_bytes(payload).decode(),
    )
    try:
        async with session.begin_nested():
            session.add(z)
            if row is None:
                session.add(DayFigures(tenant_id=outlet.tenant_id, outlet_id=outlet.id, business_day=day,
                                       figures=dump(figures), z_report_id=z.id, updated_at=z.closed_at))
            else:
                row.z_report_id = z.id
                row.updated_at = z.closed_at
            await session.flush()
    except IntegrityError:
        # Unreachable while every closer takes the series lock; kept as the last word of the unique index.
        existing = await reports.for_day(outlet.id, day)
        if existing is None:
            raise
        return CloseResult(existing, False)
    enqueue(session, outlet.tenant_id, "report.z_closed", {
        "z_report_id": z.id, "outlet_id": outlet.id, "business_day": day.isoformat(), "z_counter": z_counter,
        "number": z.number, "invoices": figures.invoices, "total": payload["totals"]["total"],
        "closed_at": payload["issued_at"], "closed_by": closed_by, "seal_hash": z.seal_hash,
    })
    await session.flush()
    return CloseResult(z, True)


def stored_seal(z: ZReport) -> dict[str, Any]:
    return {"payload": json.loads(z.payload), "hash": z.seal_hash, "signature": z.signature, "key_id": z.key_id,
            "algorithm": "ES256"}


def z_verification_url(settings: Settings, z: ZReport) -> str:
    # The hash in the URL is the capability: a Z id alone (time-ordered) does not show a day's takings.
    # The tenant says which database holds the Z (as for an invoice's QR code).
    return f"{settings.effective_public_url}/verify/z/{z.id}?h={z.seal_hash}&t={z.tenant_id}"


def render_z(settings: Settings, z: ZReport) -> dict[str, Any]:
    seal = stored_seal(z)
    body = {"id": z.id, "object": "z_report", "closed_by": z.closed_by}
    body.update({k: v for k, v in seal["payload"].items() if k not in _SEAL_ONLY})
    body["qr"] = z_verification_url(settings, z)
    body["seal"] = seal
    return body


async def get_z(session: AsyncSession, principal: Principal, z_id: str) -> ZReport:
    z = await ZReportRepository(session).get(z_id)
    if z is None or not principal.can_use_outlet(z.outlet_id):
        raise NotFound("no such Z report", code="z_report_not_found")
    return z


async def list_z(
    session: AsyncSession, principal: Principal, *, outlet_id: str | None, day_gte: date | None,
    day_lt: date | None, limit: int, starting_after: str | None,
) -> tuple[list[ZReport], bool]:
    if outlet_id and not principal.can_use_outlet(outlet_id):
        return [], False
    allowed = ({principal.outlet_id} if principal.outlet_id else principal.outlet_ids) if principal.restricted else None
    return await ZReportRepository(session).search(outlet_id=outlet_id, only=allowed, day_gte=day_gte, day_lt=day_lt,
                                                   limit=limit, starting_after=starting_after)


# ------------------------------------------------------------------------------------------- X


async def x_report(
    session: AsyncSession, settings: Settings, principal: Principal, outlet_id: str, day: date | None = None
) -> dict[str, Any]:
    """The open day's figures so far (default: the day new invoices go to), signed; not numbered, not stored."""
    outlet = await _outlet(session, principal, outlet_id)
    reports = ZReportRepository(session)
    last = await reports.latest(outlet.id)
    current = _today(outlet)
    if last is not None and last.business_day >= current:
        current = date.fromordinal(last.business_day.toordinal() + 1)  # closed early: sales go to tomorrow
    day = day or current
    await _check_day(session, outlet, day, current,
                     not_yet=f"{day} is not open yet (the current business day is {current})")
    closed = await reports.for_day(outlet.id, day)
    if closed is not None or (last is not None and last.business_day > day):
        raise Conflict(f"{day} is closed: see its Z report", code="business_day_closed", field="business_day",
                       extra={"z_report_id": closed.id} if closed else {})
    open_rows = await DayFiguresRepository(session).open_days(outlet.id, up_to=day)
    figures = next((_figures(r) for r in open_rows if r.business_day == day), Figures())
    grand = _stored_grand(last)
    for r in open_rows:
        grand = grand.merge(_figures(r))
    tenant = await TenantRepository(session).get(outlet.tenant_id)
    payload, seal = await _seal(session, settings, "X", tenant=tenant, outlet=outlet, report_id=new_id("xrp"),
                                day=day, figures=figures, grand=grand, issued=utcnow(),
                                voided=await voided_on(session, outlet, last, day))
    body = {"id": payload["report_id"], "object": "x_report"}
    body.update({k: v for k, v in payload.items() if k not in _SEAL_ONLY})
    body["seal"] = seal
    return body


async def report_context(session: AsyncSession, tenant_id: str, outlet_id: str) -> dict[str, Any]:
    """What a printed report shows besides its signed figures: the seller's and the outlet's names."""
    tenant = await TenantRepository(session).get(tenant_id)
    outlet = await OutletRepository(session).get(outlet_id)
    return {"seller": {"name": tenant.name, "tax_id": tenant.tax_id},
            "outlet": {"name": outlet.name, "code": outlet.code, "address": outlet.address},
            "lang": tenant_language(tenant.locale, tenant.jurisdiction)}


# -------------------------------------------------------------------------------- verification


async def verify_z(session: AsyncSession, z_id: str, hash_hex: str) -> Verified:
    """The public page behind a Z's QR code; the hash in its URL must match (a session reading the tenant's
    database, or the shared one for a URL without the tenant)."""
    z = await ZReportRepository(session).get(z_id)
    if z is None or not hmac.compare_digest(z.seal_hash, hash_hex):
        raise NotFound("no such Z report", code="z_report_not_found")
    key = await SigningKeyRepository(session).get(z.key_id)
    tenant = await TenantRepository(session).get(z.tenant_id)
    outlet = await OutletRepository(session).get_in_tenant(z.tenant_id, z.outlet_id)
    seal = stored_seal(z)
    check = verify_seal(seal, json.loads(key.public_jwk)) if key else None
    payload = seal["payload"]
    data = {
        "jurisdiction": tenant.jurisdiction,
        "authentic": bool(check), "reason": check.reason if check else "signing key unknown",
        "z_report_id": z.id, "number": z.number, "business_day": payload["business_day"],
        "closed_at": payload["issued_at"], "invoices": payload["counts"]["invoices"],
        "total": payload["totals"]["total"], "currency": payload["currency"],
        "seller": {"name": tenant.name, "tax_id": tenant.tax_id},
        "outlet": {"code": outlet.code, "name": outlet.name} if outlet else None,
        "checkpoint": payload["checkpoint"], "seal_hash": z.seal_hash, "key_id": z.key_id,
    }
    return Verified(data, tenant_language(tenant.locale, tenant.jurisdiction), outlet.timezone if outlet else None)


# ------------------------------------------------------------------------------------- rebuild


@dataclass
class RebuildResult:
    outlet_id: str
    invoices: int = 0
    days: int = 0
    repaired: list[str] = field(default_factory=list)  # days whose cached figures were wrong (fixed if applied)
    z_mismatches: list[str] = field(default_factory=list)  # sealed Zs that disagree with the invoices

    def as_json(self) -> dict[str, Any]:
        return {"outlet_id": self.outlet_id, "invoices": self.invoices, "days": self.days,
                "repaired": self.repaired, "z_mismatches": self.z_mismatches}


async def sealed_days(session: AsyncSession, outlet: Outlet, rules: Any
                      ) -> AsyncIterator[tuple[Invoice, dict[str, Any], dict[str, Any], date, int]]:
    """Every invoice of the outlet in sealing order, a page at a time, with its payload, document, business
    day and place in the outlet's sequence: the day sealing gave it, replayed from the Z reports (the rebuilds
    of the day figures and of analytics). The caller holds the locks that keep seals and closes out."""
    zs = await ZReportRepository(session).boundaries(outlet.id, None)
    resolver = DayResolver(outlet.timezone, [ZBoundary(n, d, to) for _, n, d, to in zs],
                           max((d for _, _, d, _ in zs), default=None))
    async for page in invoice_pages(session, outlet_id=outlet.id):
        for inv in page:
            payload, document = json.loads(inv.payload), json.loads(inv.document)
            position = day_position(rules.series_code(inv.type), inv.counter, inv.leaf_index)
            # A merged offline invoice's counter is older than the online invoices sealed while its device
            # was away, and its day was decided at the merge (device day while open, else the merge's):
            # it keeps that day, and the counters of the Zs do not move it.
            yield inv, payload, document, merged_day(document) or resolver.day_of(position, inv.issued_at), position


async def rebuild_figures(session: AsyncSession, outlet_id: str, *, apply: bool) -> RebuildResult:
    """Recompute an outlet's day figures from its sealed invoices and Z reports; compare, and repair if asked.

    Takes the outlet's series lock (no seal or close interleaves). Invoices are read a page at a
    time; memory holds one Figures per business day.
    """
    outlet = await OutletRepository(session).get(outlet_id)
    if outlet is None:
        raise NotFound("no such outlet", code="outlet_not_found")
    # The log lock too, as closes take it: an outlet numbering per receipt type (Argentina) seals
    # under its type series, not this one, and the log is what every seal of the tenant holds.
    await MerkleRepository(session).lock_log(outlet.tenant_id)
    await SeriesRepository(session).lock_for_outlet(outlet.tenant_id, outlet.id)
    tenant = await TenantRepository(session).get(outlet.tenant_id)
    rules = get_jurisdiction(tenant.jurisdiction)
    credit_types = rules.credit_note_types
    result = RebuildResult(outlet.id)
    days: dict[date, Figures] = {}
    async for inv, payload, document, day, position in sealed_days(session, outlet, rules):
        days.setdefault(day, Figures()).add_invoice(
            type=payload["type"], credit=payload["type"] in credit_types, totals=payload["totals"],
            payments=document.get("payments"), counter=position, issued_at=payload["issued_at"],
            offline="offline" in payload)
        result.invoices += 1
    rows = {r.business_day: r for r in await DayFiguresRepository(session).for_outlet(outlet.id)}
    closes = {z.business_day: z for z in await ZReportRepository(session).for_outlet(outlet.id)}
    for day in sorted(set(days) | set(rows) | set(closes)):
        expected = days.get(day, Figures())
        row, z = rows.get(day), closes.get(day)
        if z is not None and Figures.from_json(json.loads(z.payload)) != expected:
            result.z_mismatches.append(day.isoformat())
        if row is None and day not in days and z is None:
            continue
        wrong = row is None or _figures(row) != expected or (z is not None and row.z_report_id != z.id)
        if row is not None and day not in days and z is None:
            wrong = True  # figures for a day without invoices or close
        if not wrong:
            continue
        result.repaired.append(day.isoformat())
        if not apply:
            continue
        if row is None:
            session.add(DayFigures(tenant_id=outlet.tenant_id, outlet_id=outlet.id, business_day=day,
                                   figures=dump(expected), z_report_id=z.id if z else None, updated_at=utcnow()))
        elif day not in days and z is None:
            await session.delete(row)
        else:
            row.figures = dump(expected)
            row.z_report_id = z.id if z else None
            row.updated_at = utcnow()
    result.days = len(days)
    await session.flush()
    return result

