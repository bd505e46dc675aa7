"""The pure arithmetic of Z, X and A reports: business days, day figures, and which day an invoice is in.

No I/O. Amounts go in as the decimal strings of a sealed invoice's ``totals`` (the signed facts), so
the figures kept while sealing and the figures recomputed later from stored invoices are the same
computation on the same inputs. Credit notes carry positive amounts (their type says they are
credits); here they are kept apart (``credit_notes``) and subtracted in the net ``totals``.

Business days. An invoice belongs to the local date of its sealing time in the outlet's timezone,
except that invoices sealed after a day was closed belong to the next business day. So days never go
backwards along an outlet's counter: ``assign_day`` is the rule applied while sealing and
``DayResolver`` replays the same rule from the outlet's Z reports (rebuilds, A reports).
"""
from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from functools import lru_cache
from typing import Any, Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo


ONE_DAY = timedelta(days=1)


# ------------------------------------------------------------------------------- business days


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_date(moment: datetime, tz: str) -> date:
    """The calendar date of ``moment`` (aware) in the IANA timezone ``tz``."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    return moment.astimezone(_zone(tz)).date()


def day_start(day: date, tz: str) -> datetime:
    """The first instant (UTC) whose local date is ``day``.

    Where local midnight does not exist (a DST gap at 00:00, e.g. America/Santiago in September),
    zoneinfo maps the missing 00:00 with the offset in force before the jump, which is exactly the
    instant the day begins (01:00 new time).
    """
    return datetime.combine(day, time.min, tzinfo=_zone(tz)).astimezone(timezone.utc)


def day_end(day: date, tz: str) -> datetime:
    """The first instant (UTC) of the next day: the close of ``day`` is due from here (plus grace)."""
    return day_start(day + ONE_DAY, tz)


def assign_day(local: date, latest_day: date | None, latest_closed: bool) -> date:
    """The business day of an invoice sealed now (the rule ``DayResolver`` replays).

    ``latest_day``/``latest_closed``: the outlet's most recent business day with figures, if any,
    and whether it has been closed. Invoices sealed after a close go to the next day; days never
    go backwards (a clock stepping back keeps the invoice in the newer open day).
    """
    if latest_day is None:
        return local
    return max(local, latest_day + ONE_DAY if latest_closed else latest_day)


@dataclass(frozen=True, slots=True)
class ZBoundary:
    """What a Z report says about membership: day ``business_day`` ends with series counter ``counter_to``."""

    z_counter: int
    business_day: date
    counter_to: int


class DayResolver:
    """Replays ``assign_day`` for one outlet from its Z reports; feed invoices in counter order.

    An invoice covered by a Z (counter <= that Z's ``counter_to``; the first such Z in Z order) is in
    that Z's day. A later one is in max(local date, day after the last Z, day of the previous
    uncovered invoice). ``boundaries`` must contain every Z whose day is on or after the local date
    of the earliest invoice fed, and ``last_closed`` the day of the outlet's latest Z overall.
    """

    def __init__(self, tz: str, boundaries: Iterable[ZBoundary], last_closed: date | None) -> None:
        self.tz = tz
        ordered = sorted(boundaries, key=lambda b: b.z_counter)
        self._to = [b.counter_to for b in ordered]
        self._days = [b.business_day for b in ordered]
        self._last_closed = last_closed
        self._open: date | None = None

    def day_of(self, counter: int, issued_at: datetime) -> date:
        i = bisect_left(self._to, counter)
        if i < len(self._to):
            return self._days[i]
        day = assign_day(local_date(issued_at, self.tz), self._last_closed, True) if self._last_closed \
            else local_date(issued_at, self.tz)
        if self._open is not None and self._open > day:
            day = self._open
        self._open = day
        return day


# ------------------------------------------------------------------------------------- figures
#
# Sums are kept in integer cents: every amount of a sealed invoice has exactly two decimals, so
# integer sums are exact, independent of any decimal context, and cheap (this runs in every seal).


def cents(text: str) -> int:
    """A money string with at most two decimals ("1234.50") as integer cents; anything finer is refused."""
    value = Decimal(text).scaleb(2)
    if value != value.to_integral_value():
        raise ValueError(f"not a money amount: {text!r}")
    return int(value)


def money(value: int) -> str:
    """Integer cents as the canonical money string: "1234.50", "-3.00", never "-0.00"."""
    sign, value = ("-", -value) if value < 0 else ("", value)
    return f"{sign}{value // 100}.{value % 100:02d}"


@dataclass(slots=True)
class _Block:
    """Sums of invoice ``totals`` objects: per (group, rate) [amount, base, vat], and the three totals."""

    groups: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    total: int = 0
    vat_settled_by_credit: int = 0
    payable: int = 0

    def add_json(self, totals: Mapping[str, Any], sign: int = 1) -> None:
        for g in totals["groups"]:
            acc = self.groups.get((g["group"], g["rate"]))
            if acc is None:
                acc = self.groups[(g["group"], g["rate"])] = [0, 0, 0]
            acc[0] += sign * cents(g["amount"])
            acc[1] += sign * cents(g["base"])
            acc[2] += sign * cents(g["vat"])
        self.total += sign * cents(totals["total"])
        self.vat_settled_by_credit += sign * cents(totals["vat_settled_by_credit"])
        self.payable += sign * cents(totals["payable"])

    def add_block(self, other: "_Block", sign: int = 1) -> None:
        for key, (a, b, v) in other.groups.items():
            acc = self.groups.get(key)
            if acc is None:
                acc = self.groups[key] = [0, 0, 0]
            acc[0] += sign * a
            acc[1] += sign * b
            acc[2] += sign * v
        self.total += sign * other.total
        self.vat_settled_by_credit += sign * other.vat_settled_by_credit
        self.payable += sign * other.payable

    def vat(self) -> int:
        return sum(v for _, _, v in self.groups.values())

    def as_json(self) -> dict[str, Any]:
        """The shape of an invoice's ``totals``: groups sorted by letter, amounts as strings."""
        return {
            "groups": [{"group": group, "rate": rate, "amount": money(a), "base": money(b), "vat": money(v)}
                       for (group, rate), (a, b, v) in sorted(self.groups.items())],
            "total": money(self.total),
            "vat_settled_by_credit": money(self.vat_settled_by_credit),
            "payable": money(self.payable),
        }

    def to_store(self) -> list[Any]:
        return [[g, r, *sums] for (g, r), sums in sorted(self.groups.items())] + [
            [self.total, self.vat_settled_by_credit, self.payable]]

    @classmethod
    def from_store(cls, data: list[Any]) -> "_Block":
        *groups, (total, by_credit, payable) = data
        return cls({(g, r): [a, b, v] for g, r, a, b, v in groups}, total, by_credit, payable)


def _later(a: str | None, b: str | None) -> str | None:
    # RFC 3339 UTC strings of one fixed format compare correctly as text.
    return b if a is None or (b is not None and b > a) else a


def _earlier(a: str | None, b: str | None) -> str | None:
    return b if a is None or (b is not None and b < a) else a


def _min(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _max(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


@dataclass(slots=True)
class Figures:
    """The running figures of a period (a business day, or an outlet's whole life for grand totals)."""

    by_type: dict[str, int] = field(default_factory=dict)
    sales: _Block = field(default_factory=_Block)
    credit_notes: _Block = field(default_factory=_Block)
    payments: dict[str, int] = field(default_factory=dict)  # net cents: refunds on credit notes subtracted
    credit_note_count: int = 0
    first_counter: int | None = None
    last_counter: int | None = None
    first_issued_at: str | None = None
    last_issued_at: str | None = None
    offline: int = 0  # of the invoices, how many a device sealed offline (docs/offline.md)

    @property
    def invoices(self) -> int:
        return sum(self.by_type.values())

    def add_invoice(
        self, *, type: str, credit: bool, totals: Mapping[str, Any],
        payments: Sequence[Mapping[str, Any]] | None, counter: int, issued_at: str, offline: bool = False,
    ) -> None:
        """Add one sealed invoice: its ``type``, its ``totals`` and ``payments`` as sealed (JSON).
        ``offline``: sealed by a device (counted apart too; its figures are any invoice's)."""
        self.by_type[type] = self.by_type.get(type, 0) + 1
        if offline:
            self.offline += 1
        (self.credit_notes if credit else self.sales).add_json(totals)
        if credit:
            self.credit_note_count += 1
        sign = -1 if credit else 1
        for p in payments or ():
            self.payments[p["method"]] = self.payments.get(p["method"], 0) + sign * cents(p["amount"])
        self.first_counter = _min(self.first_counter, counter)
        self.last_counter = _max(self.last_counter, counter)
        self.first_issued_at = _earlier(self.first_issued_at, issued_at)
        self.last_issued_at = _later(self.last_issued_at, issued_at)

    def merge(self, other: "Figures") -> "Figures":
        """A new Figures covering both periods."""
        out = Figures.from_store(self.to_store())
        for t, n in other.by_type.items():
            out.by_type[t] = out.by_type.get(t, 0) + n
        out.sales.add_block(other.sales)
        out.credit_notes.add_block(other.credit_notes)
        for m, a in other.payments.items():
            out.payments[m] = out.payments.get(m, 0) + a
        out.credit_note_count += other.credit_note_count
        out.offline += other.offline
        out.first_counter = _min(out.first_counter, other.first_counter)
        out.last_counter = _max(out.last_counter, other.last_counter)
        out.first_issued_at = _earlier(out.first_issued_at, other.first_issued_at)
        out.last_issued_at = _later(out.last_issued_at, other.last_issued_at)
        return out

    def net(self) -> _Block:
        """Sales minus credit notes: the figures a Z reports as its ``totals``."""
        out = _Block()
        out.add_block(self.sales)
        out.add_block(self.credit_notes, sign=-1)
        return out

    @property
    def net_total(self) -> Decimal:
        return Decimal(self.sales.total - self.credit_notes.total).scaleb(-2)

    def as_json(self) -> dict[str, Any]:
        """Strings for amounts, integers for counts: the shape inside Z/X payloads."""
        return {
            "counts": {"invoices": self.invoices, "credit_notes": self.credit_note_count,
                       "by_type": dict(sorted(self.by_type.items()))},
            "totals": self.net().as_json(),
            "sales": self.sales.as_json(),
            "credit_notes": self.credit_notes.as_json(),
            "payments": [{"method": m, "amount": money(a)} for m, a in sorted(self.payments.items())],
            "first_counter": self.first_counter,
            "last_counter": self.last_counter,
            "first_issued_at": self.first_issued_at,
            "last_issued_at": self.last_issued_at,
            "offline_count": self.offline,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> "Figures":
        """Back from ``as_json`` (a Z payload's figures or grand totals)."""
        out = cls()
        if not data:
            return out
        out.by_type = {t: int(n) for t, n in data["counts"]["by_type"].items()}
        out.credit_note_count = int(data["counts"]["credit_notes"])
        out.sales.add_json(data["sales"])
        out.credit_notes.add_json(data["credit_notes"])
        out.payments = {p["method"]: cents(p["amount"]) for p in data["payments"]}
        out.first_counter = data.get("first_counter")
        out.last_counter = data.get("last_counter")
        out.first_issued_at = data.get("first_issued_at")
        out.last_issued_at = data.get("last_issued_at")
        out.offline = int(data.get("offline_count") or 0)  # reports sealed before offline sealing have none
        return out

    def to_store(self) -> dict[str, Any]:
        """Compact JSON (integer cents) for the figures cache; read back with ``from_store``."""
        stored = {"types": self.by_type, "credits": self.credit_note_count, "sales": self.sales.to_store(),
                  "credit_notes": self.credit_notes.to_store(), "payments": self.payments,
                  "counters": [self.first_counter, self.last_counter],
                  "issued": [self.first_issued_at, self.last_issued_at]}
        if self.offline:  # absent when none: the rows of outlets that never sealed offline stay as they were
            stored["offline"] = self.offline
        return stored

    @classmethod
    def from_store(cls, data: Mapping[str, Any] | None) -> "Figures":
        if not data:
            return cls()
        return cls(dict(data["types"]), _Block.from_store(data["sales"]), _Block.from_store(data["credit_notes"]),
                   dict(data["payments"]), data["credits"], *data["counters"], *data["issued"],
                   data.get("offline", 0))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Figures) and self.as_json() == other.as_json()
