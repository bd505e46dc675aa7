"""Analytics use cases: every figure is a sum over the rows sealing and the authority agent keep (never a scan
of the invoices), per business day of the outlets (the days the Z reports close), per currency (never one
currency added to another). Money is answered as decimal strings, ratios as numbers.

Services take the session and the caller and never commit; answers are cached per tenant and query for a
short while (cache.py says why that is safe).
"""
from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from stalela.analytics import forecast as fc
from stalela.analytics.cache import MISSING, TtlCache
from stalela.analytics.periods import add_months, month_end, month_pieces, month_start, periods
from stalela.analytics.repository import AnalyticsRepository
from stalela.auth.principal import Principal
from stalela.authority.outcomes import BUCKETS, OUTCOMES
from stalela.config import Settings
from stalela.db.base import utcnow
from stalela.errors import Forbidden, ValidationFailed
from stalela.fiscal.core.reports import local_date, money
from stalela.fiscal.invoices.buyers import reveal_buyers
from stalela.fiscal.invoices.tallies import DAY, GRAINS, MONTH
from stalela.fiscal.jurisdictions import get_jurisdiction
from stalela.kit.clock import rfc3339
from stalela.tenancy.repository import TenantRepository

SALES_TTL = 60.0  # sums sealing keeps: versioned by the log size besides (cache.py)
AUTHORITY_TTL = 10.0  # the authority's answers arrive without a seal
MAX_DAYS = 1096  # three years of business days per request
cache = TtlCache(SALES_TTL)
# What the answers leave open for the marketplace connectors (issue 20): orders received vs invoiced, per
# period. ``summary`` answers ``connectors: null`` until a provider is registered here (docs/analytics.md).
ConnectorFigures = Callable[[AsyncSession, "Window", str], Awaitable[dict[str, Any] | None]]
connector_figures: ConnectorFigures | None = None


@dataclass(frozen=True)
class Window:
    """The asked business days (both included) and outlets of one tenant, resolved."""
    tenant_id: str
    start: date
    end: date
    outlet_id: str | None
    outlets: tuple[str, ...] | None  # None: every outlet
    all_outlets: tuple[str, ...]
    currency: str  # the jurisdiction's: shown when nothing was sealed
    today: date
    version: int  # the tenant's log size when read

    def key(self, *more: Any) -> tuple:
        return (self.tenant_id, self.version, self.start, self.end, self.outlets, *more)

    @property
    def only(self) -> list[str] | None:
        return list(self.outlets) if self.outlets is not None else None


async def window(session: AsyncSession, principal: Principal, start: date | None, end: date | None,
                 outlet_id: str | None, default_start: Callable[[date], date]) -> Window:
    """The window of a request: ``end`` defaults to today (the jurisdiction's timezone), ``start`` by the
    endpoint; a till's credential sees its outlet(s) only."""
    jurisdiction = principal.jurisdiction or (await TenantRepository(session).get(principal.tenant_id)).jurisdiction
    rules = get_jurisdiction(jurisdiction)
    today = local_date(utcnow(), rules.default_timezone)
    end = end or today
    start = start or default_start(end)
    if start > end:
        raise ValidationFailed(f"from ({start}) is after to ({end})", code="analytics_range_invalid", field="from")
    if (end - start).days >= MAX_DAYS:
        raise ValidationFailed(f"at most {MAX_DAYS} days per request", code="analytics_range_too_long", field="to")
    repo = AnalyticsRepository(session)
    every = tuple(o.id for o in await repo.outlets())
    if outlet_id is not None and outlet_id not in every:
        raise ValidationFailed("no such outlet", code="outlet_not_found", field="outlet_id")
    if outlet_id is not None and not principal.can_use_outlet(outlet_id):
        raise Forbidden("this credential may not read this outlet", code="api_key_outlet_restricted",
                        field="outlet_id")
    outlets: tuple[str, ...] | None = (outlet_id,) if outlet_id is not None else None
    if outlets is None and principal.restricted:
        outlets = tuple(o for o in every if principal.can_use_outlet(o))
    return Window(principal.tenant_id, start, end, outlet_id, outlets, every, rules.currency, today,
                  await repo.log_size())


async def _cached(key: tuple, compute: Callable[[], Awaitable[dict[str, Any]]], ttl: float = SALES_TTL
                  ) -> dict[str, Any]:
    found = cache.get(key)
    if found is not MISSING:
        return found
    value = await compute()
    cache.put(key, value, ttl)
    return value


def _head(w: Window, name: str) -> dict[str, Any]:
    return {"object": f"analytics.{name}", "from": w.start.isoformat(), "to": w.end.isoformat(),
            "outlet_id": w.outlet_id}


def _figures(count: int, credits: int, amount: int, credited: int, vat: int) -> dict[str, Any]:
    """Counts and money of a group of rows; ``amount`` is net (sales minus what credit notes credited)."""
    return {"invoices": int(count), "credit_notes": int(credits), "sales": money(amount + credited),
            "credited": money(credited), "revenue": money(amount), "vat": money(vat)}


# --- summary ---------------------------------------------------------------------------------------------


async def summary(session: AsyncSession, w: Window, interval: str) -> dict[str, Any]:
    async def compute() -> dict[str, Any]:
        # Weeks and days need the day rows; months read the month rows of the whole months.
        kinds = GRAINS["total"] if interval == "month" else (DAY,)
        rows = await AnalyticsRepository(session).per_period(kinds, w.start, w.end, w.only)
        currencies = sorted({r[1] for r in rows}) or [w.currency]
        spans = list(periods(w.start, w.end, interval))
        starts = [s for s, _ in spans]
        sums: dict[tuple[date, str], list[int]] = {}
        totals: dict[str, list[int]] = {c: [0] * 5 for c in currencies}
        for day, currency, count, credits, amount, credited, _base, vat in rows:  # day: a month row's first day
            # The period a day is in: the last period starting on or before it.
            start = starts[max(bisect_right(starts, day) - 1, 0)]
            acc = sums.setdefault((start, currency), [0] * 5)
            for i, v in enumerate((count, credits, amount, credited, vat)):
                acc[i] += int(v or 0)
                totals[currency][i] += int(v or 0)
        return {**_head(w, "summary"), "interval": interval, "currencies": currencies,
                "totals": [{"currency": c, **_figures(*totals[c])} for c in currencies],
                "periods": [{"start": s.isoformat(), "end": e.isoformat(), "currency": c,
                             **_figures(*sums.get((s, c), [0] * 5))} for s, e in spans for c in currencies]}

    body = await _cached(w.key("summary", interval), compute)
    connectors = await connector_figures(session, w, interval) if connector_figures is not None else None
    return {**body, "connectors": connectors, "as_of": rfc3339(utcnow())}


# --- taxes, types, outlets ---------------------------------------------------------------------------------


async def taxes(session: AsyncSession, w: Window, by: str) -> dict[str, Any]:
    async def compute() -> dict[str, Any]:
        rows = await AnalyticsRepository(session).per_key(GRAINS["tax"], w.start, w.end, w.only)
        acc: dict[tuple[str, str | None, str], list[int]] = {}
        for currency, key, count, _credits, amount, _credited, base, vat in rows:
            group, _, rate = key.partition("|")
            sums = acc.setdefault((currency, group if by == "group" else None, rate), [0, 0, 0, 0])
            for i, v in enumerate((count, amount, base, vat)):
                sums[i] += int(v or 0)
        data = [{"currency": c, "group": g, "rate": r, "invoices": n, "amount": money(a), "base": money(b),
                 "vat": money(v)}
                for (c, g, r), (n, a, b, v) in sorted(acc.items(), key=lambda kv: (kv[0][0], kv[0][1] or "",
                                                                                     _rate_order(kv[0][2])))]
        totals: dict[str, list[int]] = {}
        for (c, _, _), (_, a, b, v) in acc.items():
            t = totals.setdefault(c, [0, 0, 0])
            t[0], t[1], t[2] = t[0] + a, t[1] + b, t[2] + v
        return {**_head(w, "taxes"), "by": by, "data": data,
                "totals": [{"currency": c, "amount": money(a), "base": money(b), "vat": money(v)}
                           for c, (a, b, v) in sorted(totals.items())]}

    return {**await _cached(w.key("taxes", by), compute), "as_of": rfc3339(utcnow())}


def _rate_order(rate: str) -> tuple[int, Any]:
    try:
        return (0, float(rate))
    except ValueError:  # Argentina's "exento", "no_gravado"
        return (1, rate)


async def types(session: AsyncSession, w: Window) -> dict[str, Any]:
    async def compute() -> dict[str, Any]:
        rows = await AnalyticsRepository(session).per_key(GRAINS["type"], w.start, w.end, w.only)
        data = []
        for currency, key, count, credits, amount, _credited, base, vat in sorted(rows, key=lambda r: (r[0], r[1])):
            # A type is a credit note's or not: its rows are all one or the other.
            sign = -1 if credits else 1  # a credit note's sums are stored negative: shown as the documents say
            data.append({"currency": currency, "type": key, "credit_note": bool(credits), "invoices": int(count),
                         "total": money(sign * int(amount)), "base": money(sign * int(base)),
                         "vat": money(sign * int(vat))})
        return {**_head(w, "types"), "data": data}

    return {**await _cached(w.key("types"), compute), "as_of": rfc3339(utcnow())}


async def outlets(session: AsyncSession, w: Window) -> dict[str, Any]:
    async def compute() -> dict[str, Any]:
        repo = AnalyticsRepository(session)
        rows = await repo.per_outlet(GRAINS["total"], w.start, w.end, w.only)
        known = {o.id: o for o in await repo.outlets()}
        by_outlet: dict[str, list[tuple]] = {}
        for outlet_id, currency, count, credits, amount, credited, _base, vat in rows:
            by_outlet.setdefault(outlet_id, []).append((currency, count, credits, amount, credited, vat))
        data = []
        for outlet_id in (w.outlets if w.outlets is not None else w.all_outlets):
            outlet = known.get(outlet_id)
            for currency, *figures in sorted(by_outlet.get(outlet_id) or [(w.currency, 0, 0, 0, 0, 0)]):
                data.append({"outlet_id": outlet_id, "code": outlet.code if outlet else None,
                             "name": outlet.name if outlet else None, "currency": currency,
                             **_figures(*(int(v or 0) for v in figures))})
        return {**_head(w, "outlets"), "data": data}

    return {**await _cached(w.key("outlets"), compute), "as_of": rfc3339(utcnow())}


# --- authority --------------------------------------------------------------------------------------------


def quantile(counts: list[int], q: float) -> float | None:
    """Seconds at quantile ``q`` of a histogram of BUCKETS, linear inside the bucket it falls in (the last,
    open-ended bucket answers its lower bound: "more than a day")."""
    total = sum(counts)
    if total <= 0:
        return None
    rank, seen, lower = q * total, 0, 0.0
    for (_, upper), n in zip(BUCKETS, counts):
        if n > 0 and seen + n >= rank:
            if upper == float("inf"):
                return lower
            return round(lower + (upper - lower) * (rank - seen) / n, 3)
        seen += n
        lower = upper
    return lower


async def authority(session: AsyncSession, w: Window) -> dict[str, Any]:
    async def compute() -> dict[str, Any]:
        repo = AnalyticsRepository(session)
        outcome: dict[str, list] = {o: [0, 0, [0] * len(BUCKETS)] for o in OUTCOMES}
        days: dict[date, dict[str, int]] = {}
        for day, name, count, ms, *buckets in await repo.authority(w.start, w.end, w.only):
            days.setdefault(day, {o: 0 for o in OUTCOMES})[name] = int(count or 0)
            acc = outcome.setdefault(name, [0, 0, [0] * len(BUCKETS)])
            acc[0] += int(count or 0)
            acc[1] += int(ms or 0)
            acc[2] = [a + int(b or 0) for a, b in zip(acc[2], buckets)]
        acknowledged, ms, histogram = outcome["acknowledged"]
        settled = sum(c for c, _, _ in outcome.values())
        return {**_head(w, "authority"),
                **{name: count for name, (count, _, _) in outcome.items()},
                "approval_rate": round(acknowledged / settled, 4) if settled else None,
                "pending_now": await repo.pending_now(list(w.outlets if w.outlets is not None else w.all_outlets)),
                "seconds_to_acknowledgement": {
                    "mean": round(ms / acknowledged / 1000, 3) if acknowledged else None,
                    "p50": quantile(histogram, 0.5), "p95": quantile(histogram, 0.95),
                    "histogram": [{"le": None if bound == float("inf") else bound, "count": n}
                                  for (_, bound), n in zip(BUCKETS, histogram)]},
                "days": [{"day": d.isoformat(), **counts} for d, counts in sorted(days.items())]}

    body = await _cached(w.key("authority"), compute, AUTHORITY_TTL)
    return {**body, "as_of": rfc3339(utcnow())}


# --- buyers ---------------------------------------------------------------------------------------------


def buyers_window(w: Window) -> tuple[date, date]:
    """Buyers are summed per month: the asked days widened to whole months."""
    return month_start(w.start), month_end(w.end)


async def top_buyers(session: AsyncSession, w: Window, limit: int) -> tuple[dict[str, Any], list[str]]:
    """The answer without names, and the invoice ids to read each buyer's name from. Buyers are summed over
    the whole tenant (a buyer's rows are not kept per outlet): a credential restricted to outlets is refused."""
    if w.outlets is not None:
        raise Forbidden("top buyers are the whole tenant's: this credential may read only some outlets",
                        code="api_key_outlet_restricted")
    first, last = buyers_window(w)

    async def compute() -> dict[str, Any]:
        repo = AnalyticsRepository(session)
        revenue: dict[str, int] = {}
        for _month, currency, _n, _c, amount, *_ in await repo.per_period((MONTH,), first, last, None):
            revenue[currency] = revenue.get(currency, 0) + int(amount or 0)
        data = []
        for currency in sorted(revenue):  # every currency sold in: a buyer's invoices are among them
            whole = revenue[currency]
            for rank, (subject, amount, count, credits, ref) in enumerate(
                    await repo.top_buyers(month_pieces(first, last), currency, limit), 1):
                data.append({"rank": rank, "currency": currency, "subject_id": subject, "invoices": int(count),
                             "credit_notes": int(credits), "revenue": money(int(amount)),
                             "share": round(int(amount) / whole, 4) if whole > 0 else None, "_ref": ref})
        return {"object": "analytics.buyers", "from": first.isoformat(), "to": last.isoformat(),
                "outlet_id": None, "granularity": "month", "limit": limit, "data": data}

    body = await _cached(w.key("buyers", limit), compute)
    return body, [row["_ref"] for row in body["data"] if row["_ref"]]


async def buyers(session: AsyncSession, settings: Settings, w: Window, limit: int) -> dict[str, Any]:
    """The top buyers with their names, read at each request from one of their invoices (never cached: an
    erased or restricted buyer's name disappears at once)."""
    body, refs = await top_buyers(session, w, limit)
    invoices = await AnalyticsRepository(session).invoices(refs)
    shown = await reveal_buyers(session, settings, w.tenant_id, invoices, purpose="tenant")
    data = []
    for row in body["data"]:
        seen = shown.get(row["_ref"] or "", {})
        status = seen.get("buyer_status") or ("active" if seen.get("buyer") else "unknown")
        buyer = (seen.get("buyer") or {}) if status == "active" else {}
        data.append({**{k: v for k, v in row.items() if k != "_ref"}, "name": buyer.get("name"),
                     "tax_id": buyer.get("tax_id") or buyer.get("doc_number"), "status": status})
    return {**body, "data": data, "as_of": rfc3339(utcnow())}


# --- forecast -------------------------------------------------------------------------------------------


def _label(month: date) -> str:
    return month.strftime("%Y-%m")


async def forecast(session: AsyncSession, w: Window, method: str, months: int, tests: int = 6) -> dict[str, Any]:
    """Next calendar month's revenue per currency from the complete months before the current one."""
    current = month_start(w.today)
    target, horizon = add_months(current, 1), 2
    span = months + horizon + tests + (fc.SEASON if method == "seasonal" else 0)
    first = add_months(current, -span)

    async def compute() -> dict[str, Any]:
        rows = await AnalyticsRepository(session).per_period((MONTH,), first, current, w.only)
        monthly: dict[str, dict[date, int]] = {}
        for day, currency, _n, _c, amount, *_ in rows:
            by_month = monthly.setdefault(currency, {})
            by_month[month_start(day)] = by_month.get(month_start(day), 0) + int(amount or 0)
        data = []
        for currency in sorted(monthly) or [w.currency]:
            seen = monthly.get(currency, {})
            complete = [m for m in (add_months(first, i) for i in range(span)) if m < current]
            # From the first month with sales: months before the tenant sold anything say nothing of a trend.
            started = [m for m in complete if m >= min((k for k in seen if k < current), default=current)]
            series = [seen.get(m, 0) for m in started]
            predicted = fc.predict(series, method, months, horizon)
            test = fc.backtest(series, method, months, horizon, tests)
            data.append({
                "currency": currency, "forecast": money(predicted) if predicted is not None else None,
                "month_to_date": money(seen.get(current, 0)),
                "history": [{"month": _label(m), "revenue": money(v)} for m, v in zip(started, series)],
                "backtest": {"months": len(test.points), "mae": money(test.mae) if test.mae is not None else None,
                             "mape": test.mape,
                             "points": [{"month": _label(started[i]), "actual": money(a), "predicted": money(p)}
                                        for i, a, p in test.points]}})
        return {"object": "analytics.forecast", "outlet_id": w.outlet_id, "method": method, "window": months,
                "horizon": horizon, "month": _label(target), "data": data}

    body = await _cached((w.tenant_id, w.version, w.today, w.outlets, "forecast", method, months), compute)
    return {**body, "as_of": rfc3339(utcnow())}


def default_days(days: int) -> Callable[[date], date]:
    return lambda end: end - timedelta(days=days - 1)


# The default first day of a summary by interval: 30 days, twelve weeks and a few days, twelve months (the
# current one included). The other routes default to 30 days; buyers and the forecast to the current month.
SUMMARY_START: dict[str, Callable[[date], date]] = {
    "day": default_days(30), "week": default_days(7 * 12 + 1), "month": lambda end: add_months(end, -11)}
