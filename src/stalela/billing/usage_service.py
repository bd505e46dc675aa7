"""Usage use cases: record events exactly once, void them, list them, and the daily aggregates that
bills, anomalies and the API read (``daily``, ``period_usage``). Sessions and callers come in; we flush,
never commit.

Exactly once by construction: the event row and ``UNIQUE(tenant_id, event_id)`` meet in one INSERT ... ON
CONFLICT DO NOTHING in the caller's transaction; whoever loses a race reads the winner's row back and
answers it (same payload: a duplicate) or refuses (another payload: 409).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Mapping

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from stalela.billing import bill_lines, resources
from stalela.billing.resources import Resource
from stalela.billing.usage_aggregation import DailyUsage, compute, stale_days
from stalela.billing.usage_math import Digest, day_start
from stalela.billing.usage_repository import UsageRepository
from stalela.billing.usage_schemas import UsageEventIn
from stalela.config import Settings
from stalela.errors import Conflict, NotFound, StalelaError, ValidationFailed, validation_problem
from stalela.kit import canonical
from stalela.kit.clock import SwappableClock
from stalela.kit.ids import new_id

__all__ = ["DailyUsage", "PeriodUsage", "Outcome", "record", "record_metered", "void", "list_events", "daily",
           "period_usage", "period_used", "aggregate", "clock"]

clock = SwappableClock()  # tests move it
WINDOW_PAST = timedelta(days=35)
WINDOW_FUTURE = timedelta(minutes=5)
# Ids Stalela's own metering uses; the API refuses them so that no tenant can pre-empt (or void) them.
RESERVED_PREFIX = "stalela:"


@dataclass(frozen=True)
class PeriodUsage:
    resource: str
    quantity: Decimal
    event_count: int
    events_sha256: str
    days: list[DailyUsage]


@dataclass(frozen=True)
class Outcome:
    """One event's answer: 201 recorded, 200 duplicate (``event`` is the original), 409 or 422 (``problem``)."""

    status: int
    event: dict[str, Any] | None = None
    problem: StalelaError | None = None

    @property
    def duplicate(self) -> bool:
        return self.status == 200


# --- recording ------------------------------------------------------------------------------------


def _payload_hash(event_id: str, resource: str, units: int, occurred_at: datetime, properties: str | None) -> str:
    """What "the same payload" means: the normalised event (1.50 == 1.5, +00:00 == Z), not its bytes.

    The fields joined by a unit separator: no field can hold one (ids and resources are patterned, the
    timestamp is ISO and canonical JSON escapes control characters), so the join is unambiguous, and
    hashing it costs a fraction of canonicalising a dict per event (a batch hashes 1,000)."""
    text = "\x1f".join((event_id, resource, str(units), occurred_at.isoformat(timespec="microseconds"),
                         "" if properties is None else properties))
    return hashlib.sha256(text.encode()).hexdigest()


def _parse(raw: Mapping[str, Any] | UsageEventIn, registry: dict[str, Resource], tenant_id: str,
           now: datetime) -> dict[str, Any]:
    try:
        event = raw if isinstance(raw, UsageEventIn) else UsageEventIn.model_validate(raw)
    except ValidationError as exc:
        raise validation_problem(exc.errors()) from None
    if event.event_id.startswith(RESERVED_PREFIX):
        raise ValidationFailed(f"event ids starting with {RESERVED_PREFIX!r} are Stalela's own metering",
                               code="usage_event_id_reserved", field="event_id")
    resource = resources.lookup(registry, event.resource)
    units = resources.parse_quantity(resource, event.quantity)
    properties = canonical.dumps(event.properties).decode() if event.properties is not None else None
    return {"tenant_id": tenant_id, "id": new_id("use"), "event_id": event.event_id, "resource": resource.name,
            "quantity_units": units, "occurred_at": event.occurred_at, "received_at": now, "properties": properties,
            "payload_hash": _payload_hash(event.event_id, resource.name, units, event.occurred_at, properties),
            "source": "api"}


def _in_window(row: dict[str, Any], now: datetime) -> bool:
    return now - WINDOW_PAST <= row["occurred_at"] <= now + WINDOW_FUTURE


def _out_of_window(now: datetime) -> ValidationFailed:
    return ValidationFailed(
        f"occurred_at must lie between {(now - WINDOW_PAST).isoformat()} and {(now + WINDOW_FUTURE).isoformat()} "
        "(the last 35 days, at most 5 minutes ahead)", code="usage_event_out_of_window", field="occurred_at")


def _conflict(event_id: str) -> Conflict:
    return Conflict(f"event {event_id!r} was recorded before with another payload", code="usage_event_conflict",
                    field="event_id")


async def record(session: AsyncSession, settings: Settings, tenant_id: str,
                 items: list[Mapping[str, Any] | UsageEventIn]) -> list[Outcome]:
    """Record events in order; each gets its own outcome (a bad item never fails the others). An id seen
    twice in ``items`` is answered as if the calls came one after the other."""
    registry = resources.all_resources(settings)
    now = clock.now()
    parsed: list[dict[str, Any] | StalelaError] = []
    for raw in items:
        try:
            parsed.append(_parse(raw, registry, tenant_id, now))
        except StalelaError as exc:
            parsed.append(exc)
    # The original of each id: its first valid, recordable (in-window) item. An earlier out-of-window item
    # with that id is refused as it would have been on its own, before anything was recorded.
    first: dict[str, dict[str, Any]] = {}
    for row in parsed:
        if isinstance(row, dict) and _in_window(row, now):
            first.setdefault(row["event_id"], row)
    repo = UsageRepository(session, tenant_id)
    inserted = await repo.insert_new(list(first.values()))
    existing = await repo.by_event_ids({r["event_id"] for r in parsed if isinstance(r, dict)} - inserted)
    recorded: set[str] = set()  # ids this call has recorded so far, in the items' order
    outcomes: list[Outcome] = []
    for row in parsed:
        if not isinstance(row, dict):
            outcomes.append(Outcome(422, problem=row))
            continue
        event_id = row["event_id"]
        original: Any = existing.get(event_id)
        if original is None and event_id in inserted:
            if row is first[event_id]:
                recorded.add(event_id)
                outcomes.append(Outcome(201, event=render(row)))
                continue
            original = first[event_id] if event_id in recorded else None
        if original is None:  # nothing recorded under this id yet, and this item is not recordable
            outcomes.append(Outcome(422, problem=_out_of_window(now)))
            continue
        stored_hash = original["payload_hash"] if isinstance(original, dict) else original.payload_hash
        outcomes.append(Outcome(200, event=render(original)) if stored_hash == row["payload_hash"]
                        else Outcome(409, problem=_conflict(event_id)))
    return outcomes


async def record_metered(session: AsyncSession, events: list[tuple[str, str, str, int, datetime]]) -> int:
    """What Stalela itself saw, as (tenant, event id, resource, units, occurred_at); ids are deterministic,
    so a re-run records nothing twice. Any session binding (rows carry their tenant). Returns how many were new."""
    now = clock.now()
    rows = [{"tenant_id": t, "id": new_id("use"), "event_id": e, "resource": r, "quantity_units": u,
             "occurred_at": at, "received_at": now, "properties": None,
             "payload_hash": _payload_hash(e, r, u, at, None), "source": "metering"} for t, e, r, u, at in events]
    return len(await UsageRepository(session).insert_new(rows)) if rows else 0


def quantity_text(resource: str, units: int) -> str:
    return format(resources.of_stored(resource).from_units(units), "f")


def render(event: Any) -> dict[str, Any]:
    """An event (row dict or ORM row) as the API shows it."""
    get = event.get if isinstance(event, dict) else lambda k: getattr(event, k)
    properties = get("properties")
    return {"id": get("id"), "event_id": get("event_id"), "resource": get("resource"),
            "quantity": quantity_text(get("resource"), get("quantity_units")), "occurred_at": get("occurred_at"),
            "received_at": get("received_at"), "properties": json.loads(properties) if properties else None,
            "source": get("source")}


# --- voids and the export ---------------------------------------------------------------------------


async def void(session: AsyncSession, tenant_id: str, event_id: str, reason: str | None) -> tuple[dict[str, Any], bool]:
    """Append the compensating record of an event (once: voiding again answers the first void).
    Returns (the void, created)."""
    repo = UsageRepository(session, tenant_id)
    event = (await repo.by_event_ids([event_id])).get(event_id)
    if event is None:
        raise NotFound(f"no usage event {event_id!r}", code="usage_event_not_found", field="event_id")
    # A void after its period was billed becomes a credit on a later bill, which looks back
    # LOOKBACK_PERIODS periods: an older event's void could never be credited, so it is refused.
    oldest = bill_lines.previous_period(clock.now().strftime("%Y-%m"), bill_lines.LOOKBACK_PERIODS)
    if event.occurred_at.strftime("%Y-%m") < oldest:
        raise ValidationFailed(f"events of periods before {oldest} are billed for good and can no longer be voided",
                               code="usage_event_out_of_window", field="event_id")
    if event.source == "metering":
        raise Conflict("Stalela's own metering is not voided by the tenant", code="usage_event_metered",
                       field="event_id")
    created = await repo.insert_void({"tenant_id": tenant_id, "event_id": event_id, "resource": event.resource,
                                      "quantity_units": -event.quantity_units, "occurred_at": event.occurred_at,
                                      "voided_at": clock.now(), "reason": reason})
    row = await repo.void_of(event_id)
    return {"event_id": row.event_id, "resource": row.resource, "quantity": quantity_text(row.resource, row.quantity_units),
            "occurred_at": row.occurred_at, "voided_at": row.voided_at, "reason": row.reason}, created


async def list_events(session: AsyncSession, tenant_id: str, resource: str | None, since: datetime | None,
                      until: datetime | None, limit: int, starting_after: str | None) -> tuple[list[dict[str, Any]], bool]:
    rows, more = await UsageRepository(session, tenant_id).page(resource, since, until, limit, starting_after)
    return [{**render(e), "voided_at": voided_at} for e, voided_at in rows], more


# --- daily aggregates: the read API of the other billing slices ----------------------------------------


async def daily(session: AsyncSession, tenant_id: str, resource: str | None, start: date, end: date, *,
                digests: bool = False) -> list[DailyUsage]:
    """The tenant's daily usage, start <= day < end, exactly as the aggregation writes it, events not yet
    aggregated included: days the aggregation has not caught up with are computed from the events here.

    ``digests``: give those days their event count and digest too, read from every id (what a bill's usage
    view shows). Without, a counter's days not yet aggregated are SQL sums, and their ``events_digest`` is
    None: the quantities are the same, at the cost of a sum instead of a read of every id."""
    repo = UsageRepository(session, tenant_id)
    found = {(d.resource, d.day): DailyUsage(d.day, d.resource, resources.of_stored(d.resource).from_units(d.quantity_units),
                                             d.event_count, d.events_digest)
             for d in await repo.daily_rows(resource, start, end)}
    plan = await stale_days(repo, resources.gauges(), clock.now(), await repo.cursor(), resource)
    plan = {r: {d for d in ds if start <= d < end} for r, ds in plan.items()}
    for row in await compute(repo, resources.of_stored, plan, digests=digests):
        found[(row.resource, row.day)] = row
    return sorted(found.values(), key=lambda d: (d.day, d.resource))


async def period_used(session: AsyncSession, tenant_id: str, resource: str, start: date, end: date) -> Decimal:
    """How much of ``resource`` the tenant used in start <= day < end, what a quota is measured against: a
    counter's total; a gauge's level, i.e. its latest day's time-weighted average (0 before any sample)."""
    rows = await daily(session, tenant_id, resource, start, end)
    if resources.of_stored(resource).kind == "gauge":
        return rows[-1].quantity if rows else Decimal(0)
    return sum((r.quantity for r in rows), Decimal(0))


async def period_usage(session: AsyncSession, tenant_id: str, start: date, end: date) -> dict[str, PeriodUsage]:
    """Every resource with usage in start <= day < end: its total (for gauges: the sum of the daily averages,
    in unit-days), its days, and the SHA-256 of the sorted ids of all its events and voids of the period."""
    by_resource: dict[str, list[DailyUsage]] = {}
    for row in await daily(session, tenant_id, None, start, end, digests=True):
        by_resource.setdefault(row.resource, []).append(row)
    repo = UsageRepository(session, tenant_id)
    out: dict[str, PeriodUsage] = {}
    for name, rows in sorted(by_resource.items()):
        digest = Digest()
        async for id_ in repo.period_ids(name, day_start(start), day_start(end)):
            digest.add(id_)
        out[name] = PeriodUsage(name, sum((r.quantity for r in rows), Decimal(0)), digest.count, digest.hexdigest(),
                                rows)
    return out


async def aggregate(session: AsyncSession, tenant_id: str, *, start: date | None = None,
                    end: date | None = None) -> int:
    """Refresh the tenant's ``usage_daily`` rows: the days written since the last run (incremental), or every
    day of [start, end) with usage when a range is given. Idempotent: a re-run writes identical rows.
    Returns the rows written."""
    repo = UsageRepository(session, tenant_id)
    now = clock.now()
    if start is not None and end is not None:
        plan = await stale_days(repo, resources.gauges(), now, None)
        plan = {r: {d for d in ds if start <= d < end} for r, ds in plan.items()}
    else:
        plan = await stale_days(repo, resources.gauges(), now, await repo.cursor())
    rows = await compute(repo, resources.of_stored, plan)
    await repo.put_daily([{"tenant_id": tenant_id, "resource": r.resource, "day": r.day,
                           "quantity_units": resources.of_stored(r.resource).to_units(r.quantity), "event_count": r.event_count,
                           "events_digest": r.events_digest} for r in rows])
    if start is None:
        await repo.set_cursor(now)
    return len(rows)
