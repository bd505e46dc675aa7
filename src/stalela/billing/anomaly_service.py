"""Cost anomalies: detect them for a tenant and a day, store each once, let the tenant act on them.

``detect`` judges every resource the tenant used that day (``anomaly.py``, the pure rules) and inserts
the anomalous ones with ON CONFLICT DO NOTHING on ``(tenant_id, resource, day)``. Only the rows this
call inserted get, in the same transaction, their ``billing.anomaly_detected`` outbox event (hence one
webhook per endpoint) and their ``cost_anomalies_total`` increment (at commit). Re-running the job, or
two overlapping runs, therefore store, send and count nothing more. A stored anomaly is never
recomputed: late usage that changes the day's figures does not rewrite what the tenant was told.

Services flush, never commit; the caller (request or task) owns the transaction.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from stalela.audit.service import record
from stalela.auth.principal import Principal
from stalela.billing import anomaly, rating, rating_service, resources
from stalela.billing.anomaly_models import UsageAnomaly
from stalela.billing.anomaly_repository import AnomalyRepository
from stalela.config import Settings
from stalela.db.base import utcnow
from stalela.errors import Conflict, NotFound
from stalela.kit.ids import new_id
from stalela.kit.money import decimal_str, money_str
from stalela.observability import metrics
from stalela.outbox.service import enqueue_many, event_row
from stalela.webhooks.events import BILLING_ANOMALY_DETECTED

TOPIC = BILLING_ANOMALY_DETECTED
# Where each status may go: acknowledging keeps an anomaly visible as handled; dismissing ends it.
TRANSITIONS = {"open": ("acknowledged", "dismissed"), "acknowledged": ("dismissed",), "dismissed": ()}

# What ``quantity`` of ``resource`` costs the tenant on ``day`` (the card in force that day), or None
# when nothing prices it. Called as price(session, tenant_id, day, resource, quantity).
Price = Callable[[AsyncSession, str, date, str, Decimal], Awaitable[Decimal | None]]

async def rating_price(session: AsyncSession, tenant_id: str, day: date, resource: str,
                       quantity: Decimal) -> Decimal | None:
    """The exact cost of ``quantity`` units in a period at the tenant's rate card in force on ``day``
    (allowance and tiers included); None without a card in force or a price for the resource."""
    try:
        card = await rating_service.card_for(session, tenant_id, day)
    except Conflict:  # rate_card_not_in_force: nothing prices that day
        return None
    entry = card.prices.get(resource)
    return None if entry is None else rating.cost(entry, quantity)


@dataclass(frozen=True)
class Policy:
    threshold: Decimal
    method: str


async def policy(session: AsyncSession, settings: Settings) -> Policy:
    """The bound tenant's threshold and method: its billing account's overrides, else the settings'."""
    threshold, method = await AnomalyRepository(session).overrides()
    value = settings.billing_anomaly_threshold
    if threshold:
        try:
            value = Decimal(threshold)
        except InvalidOperation:
            pass  # a malformed override (the rating API validates them) falls back to the default
    # The settings' bounds (0, 100] hold for an override too: anything else is a malformed row.
    return Policy(value if value.is_finite() and 0 < value <= 100 else settings.billing_anomaly_threshold,
                  method if method in anomaly.METHODS else settings.billing_anomaly_method)


async def impact(session: AsyncSession, tenant_id: str, verdict: anomaly.Verdict, resource: str,
                 unit: Decimal, price: Price) -> Decimal:
    """What the excess adds to the period's bill: the period's cost with the day as observed minus its
    cost had the day been at the baseline, the rest of the period so far being equal; rounded once.

    Priced in the period, not as a lone day: allowances and tiers are per period, so a spike inside
    the monthly allowance costs nothing and one past it costs the marginal price."""
    first = verdict.day.replace(day=1)
    so_far = Decimal(await AnomalyRepository(session).used_between(resource, first, verdict.day)) / unit
    observed = await price(session, tenant_id, verdict.day, resource, so_far + verdict.observed)
    baseline = await price(session, tenant_id, verdict.day, resource, so_far + max(verdict.baseline, Decimal(0)))
    if observed is None or baseline is None:
        return Decimal("0.00")
    return Decimal(money_str(observed - baseline))


async def detect(session: AsyncSession, settings: Settings, tenant_id: str, day: date,
                 price: Price = rating_price) -> list[dict[str, Any]]:
    """Detect the bound tenant's anomalies of ``day``; returns those stored by this call (rendered)."""
    repo = AnomalyRepository(session)
    rules = await policy(session, settings)
    history = await repo.history(day)
    starts = await repo.first_days(sorted(history), day)
    rows: list[dict[str, Any]] = []
    now = utcnow()
    for resource in sorted(history):
        unit = Decimal(10) ** resources.of_stored(resource, settings).scale
        series = {d: Decimal(units) / unit for d, units in history[resource].items()}
        verdict = anomaly.detect(series, day, threshold=rules.threshold, method=rules.method,
                                 first_day=starts.get(resource))
        if verdict is None or not verdict.anomalous:
            continue
        rows.append({
            "tenant_id": tenant_id, "id": new_id("anom"), "resource": resource, "day": day,
            "observed": decimal_str(verdict.observed), "baseline": decimal_str(verdict.baseline),
            "spread": decimal_str(verdict.spread), "score": decimal_str(verdict.score), "method": verdict.method,
            "threshold": decimal_str(verdict.threshold),
            "impact_eur": money_str(await impact(session, tenant_id, verdict, resource, unit, price)),
            "status": "open", "status_by": None, "status_at": None, "created_at": now,
        })
    created = set(await repo.insert_new(rows))
    stored = [row for row in rows if row["id"] in created]
    await enqueue_many(session, [event_row(tenant_id, TOPIC, event_payload(row)) for row in stored])
    for row in stored:
        metrics.cost_anomaly(session, tenant_id, row["resource"])
    return [render_row(row) for row in stored]


def event_payload(row: dict[str, Any]) -> dict[str, Any]:
    """The outbox payload (the webhook keeps its allow-listed fields of it)."""
    return {"anomaly_id": row["id"], "resource": row["resource"], "day": row["day"].isoformat(),
            "observed": row["observed"], "baseline": row["baseline"], "score": row["score"],
            "impact_eur": row["impact_eur"], "status": row["status"], "method": row["method"],
            "threshold": row["threshold"]}


# --- the tenant's and the operator's API ----------------------------------------------------------


FIELDS = ("id", "tenant_id", "resource", "day", "observed", "baseline", "spread", "score", "method", "threshold",
          "impact_eur", "status", "status_by", "status_at", "created_at")


def render_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in FIELDS}


def render(anomaly_row: UsageAnomaly) -> dict[str, Any]:
    return {k: getattr(anomaly_row, k) for k in FIELDS}


async def list_anomalies(session: AsyncSession, status: str | None, *, limit: int,
                         starting_after: str | None) -> tuple[list[dict[str, Any]], bool]:
    """The bound tenant's anomalies (or, on a platform-bound session, every tenant's), newest first."""
    rows, more = await AnomalyRepository(session).page_by_status(status, limit, starting_after)
    return [render(r) for r in rows], more


async def get_anomaly(session: AsyncSession, anomaly_id: str) -> dict[str, Any]:
    row = await AnomalyRepository(session).get(anomaly_id)
    if row is None:
        raise NotFound("no such anomaly", code="anomaly_not_found")
    return render(row)


async def set_status(session: AsyncSession, principal: Principal, anomaly_id: str, status: str) -> dict[str, Any]:
    """open → acknowledged | dismissed, acknowledged → dismissed; anything else is 409."""
    row = await AnomalyRepository(session).locked(anomaly_id)
    if row is None:
        raise NotFound("no such anomaly", code="anomaly_not_found")
    if status not in TRANSITIONS[row.status]:
        raise Conflict(f"an anomaly that is {row.status} cannot become {status}", code="anomaly_status_conflict",
                       extra={"status": row.status})
    previous = row.status
    row.status, row.status_by, row.status_at = status, principal.actor, utcnow()
    await session.flush()
    await record(session, row.tenant_id, principal.actor, f"billing.anomaly_{status}", row.id,
                 {"from": previous, "resource": row.resource, "day": row.day.isoformat()})
    return render(row)
