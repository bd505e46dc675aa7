from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from stalela.kit.schemas import CalendarDate, StrictModel

Category = Literal["personal", "fiscal", "operational", "secret"]


class PolicyIn(StrictModel):
    """Replaces the category's policy: an omitted figure falls back to its default. Whole numbers only (strict:
    ``false`` or ``"3"`` is not a number of years)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"years": 12, "grace_days": 30}]})
    years: int | None = Field(None, ge=0, le=100, strict=True, description="Whole years after the rule's anchor (fiscal: at "
                              "least the statutory floor, counted from the end of the financial year).")
    days: int | None = Field(None, ge=0, le=36500, strict=True, description="Days on top of the years (for purging rules: "
                             "the N of days:N).")
    grace_days: int | None = Field(None, ge=1, le=365, strict=True, description="Between a row's mark and its purge "
                                   "(default STALELA_RETENTION_GRACE_DAYS).")


class FloorOut(StrictModel):
    jurisdiction: str
    years: int
    citation: str
    covers: str
    counted_from: str


class RuleOut(StrictModel):
    purger: str
    table: str
    rule: str = Field(description="The data map's rule (docs/privacy-retention.md).")
    anchor: str
    years: int = Field(description="In effect: rows go this long after their anchor (plus the grace).")
    days: int


class PolicyOut(StrictModel):
    category: Category
    source: Literal["default", "statutory", "tenant"]
    years: int | None
    days: int | None
    grace_days: int
    floor: FloorOut | None = Field(description="The law's minimum (fiscal only): never shortened.")
    rules: list[RuleOut] = Field(description="The purging rules of the category with the period in effect.")
    updated_at: datetime | None
    updated_by: str | None


class PoliciesOut(StrictModel):
    jurisdiction: str
    data: list[PolicyOut]


class HoldScopeIn(StrictModel):
    outlet_id: str | None = Field(None, max_length=40, pattern=r"^[A-Za-z0-9_-]{1,40}$")
    from_: CalendarDate | None = Field(None, alias="from", description="First UTC date covered, inclusive.")
    to: CalendarDate | None = Field(None, description="Last UTC date covered, inclusive.")

    @model_validator(mode="after")
    def _ordered(self) -> "HoldScopeIn":
        if self.from_ is not None and self.to is not None and self.from_ > self.to:
            raise ValueError("from is after to")
        return self


class HoldCreate(StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"reason": "DGI audit of 2026", "scope": {"outlet_id": "out_01m82ejke9nqfx6wjsbqs2stkd", "from": "2026-01-01", "to": "2026-12-31"}},
    ]})
    reason: str = Field(min_length=1, max_length=500, description="Why (an audit, a dispute): shown, never parsed.")
    scope: HoldScopeIn = Field(default_factory=HoldScopeIn,
                               description="Nothing set: the whole tenant. An outlet, a range of dates, or both.")


class HoldScopeOut(StrictModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    outlet_id: str | None
    from_: date | None = Field(alias="from")
    to: date | None


class HoldOut(StrictModel):
    id: str
    reason: str
    scope: HoldScopeOut
    active: bool
    created_at: datetime
    created_by: str
    released_at: datetime | None
    released_by: str | None


class SetOut(StrictModel):
    count: int
    sample: list[str] = Field(description="The first few keys, in key order.")


class PendingOut(StrictModel):
    count: int = Field(description="Marks standing now.")
    next_purge_after: datetime | None


class PurgerPreview(StrictModel):
    purger: str
    table: str
    category: Category
    rule: str
    years: int
    days: int
    grace_days: int
    mark: SetOut = Field(description="Past their rule, not yet marked: the run marks them (purged after the grace).")
    purge: SetOut = Field(description="Marked, grace over, still past their rule: the run deletes them.")
    unmark: SetOut = Field(description="Marked but no longer candidates (held, changed, policy lengthened): "
                                       "the run drops their marks.")
    pending: PendingOut


class ShredOut(StrictModel):
    count: int = Field(description="Data subjects (buyers) whose key the run destroys: every invoice naming them "
                                   "left retention, or an erasure restricted them until a date now past.")
    sample: list[str] = Field(description="The first subject ids (no personal value).")
    held: bool = Field(description="A legal hold of the tenant suspends all shredding.")
    last_seen_before: datetime | None = Field(description="Active subjects last seen before this are due.")


class PreviewOut(StrictModel):
    as_of: datetime
    held: bool = Field(description="A hold covers the whole tenant: nothing is marked or purged.")
    purgers: list[PurgerPreview]
    shred: ShredOut
