"""Retention arithmetic, pure (no I/O): when a fiscal document may go, and when other data is past its rule.

Dates are UTC dates. A document's retention is counted from the end of the financial year of the UTC
date of its ``issued_at``, not of the outlet's local date: the two differ only for documents issued
within a few hours of a year end, by at most one day of a period that lasts years, and the UTC date
is what the seal itself states. ``retain_until`` is the LAST day the document must be kept: it may be
destroyed (its personal parts shredded) from the next day on.
"""
from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from stalela.privacy.retention_data import floor_for


@dataclass(frozen=True)
class Period:
    """A tenant policy's figures for one category: kept this long after the rule's anchor."""

    years: int = 0
    days: int = 0


@dataclass(frozen=True)
class HoldScope:
    """What a legal hold covers: the whole tenant (nothing set), an outlet, a range of UTC dates, or both."""

    outlet_id: str | None = None
    date_from: date | None = None
    date_to: date | None = None

    @property
    def whole_tenant(self) -> bool:
        return self.outlet_id is None and self.date_from is None and self.date_to is None

    def covers(self, moment: date | datetime, outlet_id: str | None = None) -> bool:
        """``outlet_id`` None means "not known for this record": an outlet's hold then covers it, since
        nothing shows the record is outside the outlet's business (the safe side of a hold)."""
        if self.outlet_id is not None and outlet_id is not None and outlet_id != self.outlet_id:
            return False
        day = utc_date(moment)
        return (self.date_from is None or day >= self.date_from) and (self.date_to is None or day <= self.date_to)


def utc_date(moment: date | datetime) -> date:
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            raise ValueError("naive datetime: retention counts in UTC")
        return moment.astimezone(timezone.utc).date()
    return moment


def month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def add_years(day: date, years: int) -> date:
    """The same day ``years`` later (or earlier); 29 February becomes 28 February in a common year."""
    year = day.year + years
    return day.replace(year=year, day=min(day.day, calendar.monthrange(year, day.month)[1]))


def financial_year_end(day: date, year_end_month: int = 12) -> date:
    """The last day of the financial year that contains ``day`` (years end on the last day of a month)."""
    end = month_end(day.year, year_end_month)
    return end if day <= end else month_end(day.year + 1, year_end_month)


def retain_until(jurisdiction: str | None, issued_at: date | datetime, policy: Period | None = None,
                 holds: Iterable[HoldScope] = (), *, outlet_id: str | None = None) -> date | None:
    """The last day a fiscal document issued at ``issued_at`` must be kept, or None while a legal hold
    covers it (a hold has no end date: it lasts until released).

    The period is the jurisdiction's statutory floor, or the tenant's longer ``fiscal`` policy (its
    ``years``, never fewer than the floor's, plus its ``days``), counted from the end of the financial
    year. The end of a financial year is the end of a month, and so is the period's end: a year ending
    in February ends on the 28th or the 29th, whichever the target year has.
    """
    if any(h.covers(issued_at, outlet_id) for h in holds):
        return None
    floor = floor_for(jurisdiction)
    years = max(floor.years, policy.years if policy else 0)
    end = financial_year_end(utc_date(issued_at), floor.year_end_month)
    return month_end(end.year + years, end.month) + timedelta(days=policy.days if policy else 0)


def cutoff(now: datetime, period: Period) -> datetime:
    """Rows whose anchor is before this are past a rule of ``period`` after the anchor at ``now``."""
    moment = now - timedelta(days=period.days)
    return moment.replace(year=moment.year - period.years, day=min(
        moment.day, calendar.monthrange(moment.year - period.years, moment.month)[1]))


def below_floor(jurisdiction: str | None, years: int | None) -> bool:
    """A ``fiscal`` policy's years shorter than the law's floor (omitted years mean the floor itself)."""
    return years is not None and years < floor_for(jurisdiction).years
