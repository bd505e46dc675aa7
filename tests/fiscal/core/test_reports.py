"""The pure report arithmetic: business days across midnight and DST, figures, and the day resolver."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stalela.fiscal.core.invoice import InvoiceDraft
from stalela.fiscal.core.reports import (
    DayResolver,
    Figures,
    ZBoundary,
    assign_day,
    day_end,
    day_start,
    local_date,
)
from stalela.fiscal.jurisdictions import get_jurisdiction
from tests.fiscal.drafts import line

UTC = timezone.utc
CD = get_jurisdiction("CD")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


# ----------------------------------------------------------------------------------- business days


@pytest.mark.parametrize("moment, tz, expected", [
    ("2026-11-22T23:59:59+01:00", "Africa/Kinshasa", "2026-11-22"),  # one second before local midnight
    ("2026-11-23T00:00:00+01:00", "Africa/Kinshasa", "2026-11-23"),  # at local midnight
    ("2026-11-22T22:59:59+00:00", "Africa/Kinshasa", "2026-11-22"),  # the same instants in UTC
    ("2026-11-22T23:00:00+00:00", "Africa/Kinshasa", "2026-11-23"),
    ("2026-11-22T22:00:00+00:00", "Africa/Lubumbashi", "2026-11-23"),  # UTC+2, the DRC's other zone
    ("2026-03-08T04:59:59+00:00", "America/New_York", "2026-03-07"),  # 23:59:59 EST
    ("2026-03-09T03:59:59+00:00", "America/New_York", "2026-03-08"),  # 23:59:59 EDT, after the jump
])
def test_local_date(moment, tz, expected):
    assert local_date(utc(moment), tz) == date.fromisoformat(expected)


def test_days_have_23_or_25_hours_where_dst_changes():
    assert day_end(date(2026, 3, 8), "America/New_York") - day_start(date(2026, 3, 8), "America/New_York") \
        == timedelta(hours=23)
    assert day_end(date(2026, 11, 1), "America/New_York") - day_start(date(2026, 11, 1), "America/New_York") \
        == timedelta(hours=25)
    assert day_end(date(2026, 11, 22), "Africa/Kinshasa") - day_start(date(2026, 11, 22), "Africa/Kinshasa") \
        == timedelta(hours=24)


def test_a_day_whose_midnight_does_not_exist_starts_at_the_jump():
    # Chile moved clocks from 00:00 to 01:00 on 2024-09-08: the day begins at 04:00 UTC (01:00 -03).
    start = day_start(date(2024, 9, 8), "America/Santiago")
    assert start == utc("2024-09-08T04:00:00+00:00")
    assert local_date(start, "America/Santiago") == date(2024, 9, 8)
    assert local_date(start - timedelta(seconds=1), "America/Santiago") == date(2024, 9, 7)
    assert day_end(date(2024, 9, 7), "America/Santiago") == start  # no gap, no overlap between days


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError):
        local_date(datetime(2026, 1, 1), "Africa/Kinshasa")


def test_assign_day():
    d = date(2026, 11, 22)
    assert assign_day(d, None, False) == d
    assert assign_day(d, d, False) == d  # the open day
    assert assign_day(d, d, True) == d + timedelta(days=1)  # sealed after today's close: tomorrow
    assert assign_day(d, d - timedelta(days=1), True) == d
    assert assign_day(d, d - timedelta(days=3), False) == d  # an older day still open: today anyway
    assert assign_day(d, d + timedelta(days=1), False) == d + timedelta(days=1)  # clock stepped back


# ----------------------------------------------------------------------------------------- figures


def totals(*lines, price_mode="ht", type="FV") -> dict:
    return CD.compute(InvoiceDraft(type=type, price_mode=price_mode, lines=lines)).totals_as_json()


def test_credit_notes_are_subtracted_and_kept_apart():
    f = Figures()
    f.add_invoice(type="FV", credit=False, totals=totals(line("B", "2", "100.00"), line("A", "1", "50")),
                  payments=[{"method": "ESPECES", "amount": "282.00"}], counter=7, issued_at="2026-11-22T10:00:00.000Z")
    f.add_invoice(type="FA", credit=True, totals=totals(line("B", "1", "100.00")),
                  payments=[{"method": "ESPECES", "amount": "116.00"}], counter=8, issued_at="2026-11-22T11:00:00.000Z")
    out = f.as_json()
    assert out["counts"] == {"invoices": 2, "credit_notes": 1, "by_type": {"FA": 1, "FV": 1}}
    assert out["sales"]["total"] == "282.00" and out["credit_notes"]["total"] == "116.00"
    assert out["totals"] == {
        "groups": [{"group": "A", "rate": "0", "amount": "50.00", "base": "50.00", "vat": "0.00"},
                   {"group": "B", "rate": "0.16", "amount": "100.00", "base": "100.00", "vat": "16.00"}],
        "total": "166.00", "vat_settled_by_credit": "0.00", "payable": "166.00",
    }
    assert out["payments"] == [{"method": "ESPECES", "amount": "166.00"}]
    assert (out["first_counter"], out["last_counter"]) == (7, 8)
    assert (out["first_issued_at"], out["last_issued_at"]) == ("2026-11-22T10:00:00.000Z", "2026-11-22T11:00:00.000Z")
    assert Figures.from_json(out) == f
    assert Figures.from_json(None).as_json()["totals"]["total"] == "0.00"


def test_vat_settled_by_credit_and_ttc():
    f = Figures()
    f.add_invoice(type="FT", credit=False, totals=totals(line("F", "1", "1000")), payments=None, counter=1,
                  issued_at="2026-11-22T10:00:00.000Z")
    f.add_invoice(type="FV", credit=False, totals=totals(line("B", "3", "1160"), price_mode="ttc"), payments=None,
                  counter=2, issued_at="2026-11-22T10:00:01.000Z")
    t = f.as_json()["totals"]
    assert t["vat_settled_by_credit"] == "160.00"
    assert t["total"] == "4640.00" and t["payable"] == "4480.00"
    assert [g["group"] for g in t["groups"]] == ["B", "F"]


amounts = st.integers(0, 10**12).map(lambda n: Decimal(n).scaleb(-2))
groups = st.sampled_from(list("ABCFGHIJKM"))


@st.composite
def invoices(draw):
    lines = [line(draw(groups), "1", draw(amounts)) for _ in range(draw(st.integers(1, 4)))]
    mode = draw(st.sampled_from(["ht", "ttc"]))
    credit = draw(st.booleans())
    t = totals(*lines, price_mode=mode)
    method = draw(st.sampled_from(["ESPECES", "MOBILEMONEY", "CARTEBANCAIRE"]))
    return {"type": "FA" if credit else "FV", "credit": credit, "totals": t,
            "payments": [{"method": method, "amount": t["payable"]}]}


@settings(max_examples=150, deadline=None)
@given(st.lists(invoices(), max_size=25), st.integers(0, 25))
def test_figures_equal_the_signed_sum_of_their_invoices_in_any_split(docs, cut):
    whole, left, right = Figures(), Figures(), Figures()
    for i, doc in enumerate(docs):
        for target in (whole, left if i < cut else right):
            target.add_invoice(**doc, counter=i + 1, issued_at=f"2026-11-22T10:00:{i:02d}.000Z")
    out = whole.as_json()
    sign = {False: 1, True: -1}
    assert Decimal(out["totals"]["total"]) == sum(
        (sign[d["credit"]] * Decimal(d["totals"]["total"]) for d in docs), Decimal(0))
    assert Decimal(out["totals"]["payable"]) == sum(
        (sign[d["credit"]] * Decimal(d["totals"]["payable"]) for d in docs), Decimal(0))
    for g in out["totals"]["groups"]:
        for key in ("amount", "base", "vat"):
            assert Decimal(g[key]) == sum((sign[d["credit"]] * Decimal(x[key]) for d in docs
                                           for x in d["totals"]["groups"] if x["group"] == g["group"]), Decimal(0))
    assert sum(Decimal(p["amount"]) for p in out["payments"]) == Decimal(out["totals"]["payable"])
    # Closing in two parts and adding (grand totals) gives the same as one part.
    assert left.merge(right) == whole
    assert Figures.from_json(whole.as_json()) == whole


# ---------------------------------------------------------------------------------- day resolver


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.tuples(st.just("seal"), st.integers(0, 40)), st.tuples(st.just("close"), st.just(0))),
                max_size=40))
def test_the_resolver_replays_the_sealing_rule(events):
    """Simulate sealing (assign_day over the latest row) and closing; the resolver must agree afterwards."""
    tz = "Africa/Kinshasa"
    t0 = utc("2026-11-20T08:00:00+01:00")
    now, counter = t0, 0
    rows: dict[date, bool] = {}  # day -> closed
    zs: list[ZBoundary] = []
    sealed: list[tuple[int, datetime, date]] = []
    for kind, hours in events:
        now += timedelta(hours=hours)
        if kind == "seal":
            latest = max(rows) if rows else None
            day = assign_day(local_date(now, tz), latest, rows.get(latest, False) if latest else False)
            rows.setdefault(day, False)
            counter += 1
            sealed.append((counter, now, day))
        else:  # close the oldest open day, or today if none is open and today is not closed yet
            open_days = sorted(d for d, closed in rows.items() if not closed)
            today = local_date(now, tz)
            target = open_days[0] if open_days else today
            if target in rows and rows[target] or (zs and zs[-1].business_day >= target):
                continue
            last = max((c for c, _, d in sealed if d == target), default=zs[-1].counter_to if zs else 0)
            rows[target] = True
            zs.append(ZBoundary(len(zs) + 1, target, last))
    resolver = DayResolver(tz, zs, zs[-1].business_day if zs else None)
    assert [resolver.day_of(c, t) for c, t, _ in sealed] == [d for _, _, d in sealed]
