"""Which days of a tenant's usage need (re)computing, and computing them from the events alone.

The aggregation loop writes what ``compute`` returns into ``usage_daily``; the read path
(``usage_service.daily``) computes the same days on the fly when the loop has not caught up, so the API and
the bills always agree with the events.

Incremental state: ``usage_cursors.aggregated_through`` per tenant. A run finds the (resource, day) pairs of
the events received and voids written since the cursor minus ``LATE_COMMIT_MARGIN``, recomputes them, then
moves the cursor to the run's start. The margin covers transactions still in flight when the cursor moved:
an event's ``received_at`` is taken before its transaction commits, so one committed late (by less than the
margin; request transactions last seconds) is still found by the next run. Recomputing a day twice is
harmless: the result depends on the events only.

Gauges carry: a sample changes its day and every later day up to the next sample, and a day with no sample
still holds the last value. So a gauge's plan runs from its earliest changed day to today, and days the
table has not reached yet (today, after a quiet midnight) are added.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Callable, Iterable

from stalela.billing.resources import Resource
from stalela.billing.usage_math import DAY, day_of, day_start, days, digest, gauge_day, void_id
from stalela.billing.usage_repository import UsageRepository

LATE_COMMIT_MARGIN = timedelta(minutes=10)
Scale = Callable[[str], Resource]


@dataclass(frozen=True)
class DailyUsage:
    day: date
    resource: str
    quantity: Decimal
    event_count: int
    events_digest: str | None  # None: summed without reading the ids (compute's ``digests``)


async def stale_days(repo: UsageRepository, gauges: Iterable[str], now: datetime, cursor: datetime | None,
                     only: str | None = None) -> dict[str, set[date]]:
    """resource -> the days whose aggregate may differ from what ``usage_daily`` holds (all days with usage
    when ``cursor`` is None); of one resource if ``only`` names it. ``gauges``: the gauges' names."""
    plan: dict[str, set[date]] = {}
    for resource, day in await repo.written_since(cursor - LATE_COMMIT_MARGIN if cursor else None, only):
        plan.setdefault(resource, set()).add(day)
    today = day_of(now)
    # A gauge without a single sample has no last day and no first sample: it adds nothing.
    for resource in gauges:
        if only is not None and resource != only:
            continue
        changed = plan.get(resource, set())
        if changed:
            first = min(changed)
        else:
            last = await repo.last_daily_day(resource)
            first = last + DAY if last is not None else await repo.first_sample_day(resource)
        if first is not None:
            plan[resource] = changed | set(days(first, max([today, *changed]) + DAY))
    return {r: ds for r, ds in plan.items() if ds}


def _runs(wanted: Iterable[date]) -> list[tuple[date, date]]:
    """Consecutive days as [start, end) runs: one query per run."""
    runs: list[tuple[date, date]] = []
    for day in sorted(wanted):
        if runs and runs[-1][1] == day:
            runs[-1] = (runs[-1][0], day + DAY)
        else:
            runs.append((day, day + DAY))
    return runs


async def compute(repo: UsageRepository, scale: Scale, plan: dict[str, set[date]], *,
                  digests: bool = True) -> list[DailyUsage]:
    """The planned days' aggregates. Without ``digests``, counters are summed by the database and their rows
    carry no digest (``events_digest`` None): what a read that shows none needs. Gauges always read their
    samples (a few a day), so their rows always carry one."""
    out: list[DailyUsage] = []
    for name, wanted in sorted(plan.items()):
        resource = scale(name)
        for start, end in _runs(wanted):
            if resource.kind == "gauge":
                out.extend(await _gauge(repo, resource, start, end))
            elif digests:
                out.extend(await _counter(repo, resource, start, end))
            else:
                out.extend(DailyUsage(day, resource.name, resource.from_units(units), count, None)
                           for day, units, count in await repo.counter_sums(resource.name, day_start(start),
                                                                            day_start(end)))
    return out


async def _counter(repo: UsageRepository, resource: Resource, start: date, end: date) -> list[DailyUsage]:
    """The sum of the day's events and voids (a void is the opposite quantity at the event's time)."""
    if repo.dialect == "postgresql":
        return [DailyUsage(day, resource.name, resource.from_units(units), count, hexdigest)
                for day, units, count, hexdigest in await repo.counter_digests(resource.name, day_start(start),
                                                                            day_start(end))]
    per_day: dict[date, tuple[int, list[str]]] = {}
    for id_, units, at in await repo.counter_rows(resource.name, day_start(start), day_start(end)):
        total, ids = per_day.setdefault(day_of(at), (0, []))
        per_day[day_of(at)] = (total + units, ids)
        ids.append(id_)
    return [_row(day, resource, units, ids) for day, (units, ids) in sorted(per_day.items())]


async def _gauge(repo: UsageRepository, resource: Resource, start: date, end: date) -> list[DailyUsage]:
    """The time-weighted average of the step function of live samples (usage_math.gauge_day); the digest
    covers the day's samples, voided ones with their void."""
    carry_row, samples = await repo.gauge_samples(resource.name, day_start(start), day_start(end))
    carry = carry_row[1] if carry_row else None
    by_day: dict[date, list[tuple[str, int, datetime, bool]]] = {}
    for sample in samples:
        by_day.setdefault(day_of(sample[2]), []).append(sample)
    out: list[DailyUsage] = []
    for day in days(start, end):
        todays = by_day.get(day, [])
        live = [(at, units) for _, units, at, voided in todays if not voided]
        if carry is None and not live and not todays:
            continue  # nothing measured yet: no row
        ids = [i for i, *_ in todays] + [void_id(i) for i, _, _, voided in todays if voided]
        out.append(_row(day, resource, gauge_day(day, carry, live), ids))
        if live:
            carry = live[-1][1]
    return out


def _row(day: date, resource: Resource, units: int, ids: list[str]) -> DailyUsage:
    return DailyUsage(day, resource.name, resource.from_units(units), len(ids), digest(ids))
