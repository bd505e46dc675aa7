"""The retention arithmetic (pure): statutory floors from the end of the financial year, UTC dates, leap
years, tenant policies that lengthen, and legal holds."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stalela.privacy.retention_data import FLOORS, StatutoryFloor, floor_for
from stalela.privacy.retention_rules import (
    HoldScope,
    Period,
    add_years,
    below_floor,
    cutoff,
    financial_year_end,
    month_end,
    retain_until,
)

UTC = timezone.utc


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_the_floors_are_data_with_their_citations():
    assert (FLOORS["CD"].years, FLOORS["CD"].citation) == (10, "OHADA AUDCIF (2017) art. 24")
    assert (FLOORS["AR"].years, FLOORS["AR"].citation) == (10, "CCyC art. 328; Decreto 1397/79 art. 48")
    assert FLOORS["DE"].years == 8 and "§147(3) AO" in FLOORS["DE"].citation and "§14b" in FLOORS["DE"].citation
    assert FLOORS["FR"].years == 10 and "L123-22" in FLOORS["FR"].citation
    assert {f.jurisdiction for f in FLOORS.values() if f.served} == {"CD", "AR"}
    assert all(f.counted_from.startswith("end of the financial year") for f in FLOORS.values())


@pytest.mark.parametrize("issued, until", [
    (at(2026, 1, 3, 9), date(2036, 12, 31)),      # counted from the year's end, not from the date
    (at(2026, 12, 30, 18), date(2036, 12, 31)),   # so both end on the same day
    (at(2026, 12, 31, 23, 59, 59), date(2036, 12, 31)),
    (at(2027, 1, 1, 0, 0), date(2037, 12, 31)),
])
def test_ten_years_from_the_end_of_the_calendar_year_in_the_drc(issued, until):
    assert retain_until("CD", issued) == until
    assert retain_until("AR", issued) == until


def test_the_utc_date_of_issued_at_counts_not_the_outlets_local_date():
    # 00:30 on 1 January in Kinshasa (UTC+1) is still 31 December in UTC: the 2026 year.
    kinshasa_new_year = datetime(2027, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    assert retain_until("CD", kinshasa_new_year) == date(2036, 12, 31)
    # 21:30 on 31 December in Buenos Aires (UTC-3) is already 2027 in UTC.
    buenos_aires_eve = datetime(2026, 12, 31, 21, 30, tzinfo=timezone(timedelta(hours=-3)))
    assert retain_until("AR", buenos_aires_eve) == date(2037, 12, 31)
    assert retain_until("CD", date(2026, 5, 1)) == date(2036, 12, 31)  # a date is taken as a UTC date
    with pytest.raises(ValueError):
        retain_until("CD", datetime(2026, 5, 1, 12))  # naive: no way to know its UTC date


def test_germany_keeps_invoices_eight_years_and_france_ten():
    assert retain_until("DE", at(2025, 6, 1)) == date(2033, 12, 31)
    assert retain_until("FR", at(2025, 6, 1)) == date(2035, 12, 31)


def test_an_unknown_jurisdiction_gets_the_longest_floor_known():
    floor = floor_for("ZZ")
    assert floor.years == max(f.years for f in FLOORS.values()) and "none on record" in floor.citation
    assert retain_until("ZZ", at(2026, 3, 1)) == date(2036, 12, 31)


def test_financial_years_ending_in_another_month_and_leap_years(monkeypatch):
    assert financial_year_end(date(2026, 7, 1), 6) == date(2027, 6, 30)
    assert financial_year_end(date(2026, 6, 30), 6) == date(2026, 6, 30)
    assert financial_year_end(date(2024, 2, 29), 2) == date(2024, 2, 29)
    assert financial_year_end(date(2023, 3, 1), 2) == date(2024, 2, 29)  # the year ends on a leap day
    assert month_end(2028, 2) == date(2028, 2, 29) and month_end(2100, 2) == date(2100, 2, 28)
    monkeypatch.setitem(FLOORS, "XX", StatutoryFloor("XX", 10, "test", "invoices", year_end_month=2))
    # A year ending on 29 February 2024 keeps its documents to the end of February 2034: the 28th.
    assert retain_until("XX", at(2023, 3, 1)) == date(2034, 2, 28)
    # One ending on 28 February 2026 keeps them to the end of February 2036: the 29th, not the 28th.
    assert retain_until("XX", at(2025, 3, 15)) == date(2036, 2, 29)


def test_a_policy_lengthens_never_shortens():
    issued = at(2026, 4, 10)
    assert retain_until("CD", issued, Period(years=12)) == date(2038, 12, 31)
    assert retain_until("CD", issued, Period(years=10, days=31)) == date(2037, 1, 31)
    # A policy saved before the law raised its floor (or written around the API) cannot shorten it.
    assert retain_until("CD", issued, Period(years=3)) == date(2036, 12, 31)
    assert below_floor("CD", 9) and not below_floor("CD", 10) and not below_floor("CD", None)
    assert below_floor("DE", 7) and not below_floor("DE", 8)


def test_a_legal_hold_suspends_retention_for_what_it_covers():
    issued = at(2026, 4, 10, 12)
    assert retain_until("CD", issued, holds=[HoldScope()]) is None  # the whole tenant
    assert retain_until("CD", issued, holds=[HoldScope(outlet_id="out_a")], outlet_id="out_a") is None
    assert retain_until("CD", issued, holds=[HoldScope(outlet_id="out_b")], outlet_id="out_a") == date(2036, 12, 31)
    # A record whose outlet is unknown is covered by any outlet's hold: the safe side.
    assert retain_until("CD", issued, holds=[HoldScope(outlet_id="out_b")]) is None
    inside = HoldScope(date_from=date(2026, 4, 10), date_to=date(2026, 4, 10))  # both ends inclusive
    assert retain_until("CD", issued, holds=[inside]) is None
    before = HoldScope(date_to=date(2026, 4, 9))
    after = HoldScope(date_from=date(2026, 4, 11))
    assert retain_until("CD", issued, holds=[before, after]) == date(2036, 12, 31)
    both = HoldScope(outlet_id="out_a", date_from=date(2026, 1, 1), date_to=date(2026, 12, 31))
    assert retain_until("CD", issued, holds=[both], outlet_id="out_a") is None
    assert retain_until("CD", issued, holds=[both], outlet_id="out_c") == date(2036, 12, 31)
    assert HoldScope().whole_tenant and not both.whole_tenant


def test_cutoffs_of_purging_rules():
    now = at(2028, 2, 29, 12)
    assert cutoff(now, Period(days=30)) == at(2028, 1, 30, 12)
    assert cutoff(now, Period()) == now
    assert cutoff(now, Period(years=1)) == at(2027, 2, 28, 12)  # no 29 February in 2027
    assert cutoff(now, Period(years=1, days=1)) == at(2027, 2, 28, 12)
    assert add_years(date(2024, 2, 29), 4) == date(2028, 2, 29) and add_years(date(2024, 2, 29), -1) == date(2023, 2, 28)


@given(st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2200, 12, 31), timezones=st.just(UTC)),
       st.sampled_from(sorted(FLOORS)), st.integers(0, 5), st.integers(0, 400))
def test_retention_is_at_least_the_floor_and_ends_with_its_financial_year(issued, jurisdiction, extra, days):
    floor = FLOORS[jurisdiction]
    until = retain_until(jurisdiction, issued, Period(years=floor.years + extra, days=days))
    end = until - timedelta(days=days)
    assert end == month_end(end.year, floor.year_end_month)  # the end of a financial year
    assert end.year - issued.year in (floor.years + extra, floor.years + extra + 1)
    assert until >= add_years(issued.date(), floor.years)
    # Every document of the same financial year ends on the same day.
    year_end = financial_year_end(issued.date(), floor.year_end_month)
    assert retain_until(jurisdiction, year_end, Period(years=floor.years + extra, days=days)) == until
