"""Shared input types: the base of every API input model, ids, bounded integers and strict dates.

NUL is refused up front because PostgreSQL cannot store it in text and would fail the request
with a server error deep in the database layer. Integers are bounded for the same reason: a number
beyond int64 passes Python and pydantic but fails as a PostgreSQL ``bigint`` parameter (a 500).
"""
from __future__ import annotations

import re
from datetime import date, datetime, timezone
from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
PathId = Annotated[str, Path(pattern=ID_PATTERN)]


QueryId = Annotated[str | None, Query(pattern=ID_PATTERN)]

INT64_MAX = 2**63 - 1
# An integer an API accepts (query, path or body) is one of these or has tighter bounds of its own, so
# none can overflow a bigint (tests/api/test_input_robustness.py checks the whole OpenAPI document).
NonNegativeInt64 = Annotated[int, Field(ge=0, le=INT64_MAX)]
PositiveInt64 = Annotated[int, Field(ge=1, le=INT64_MAX)]

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# RFC 3339 date-time: a full date, "T" (or a space, as pydantic reads it), a time, and an offset.
_DATETIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")


# No fiscal day lies outside these, and both leave room for the arithmetic done on days (margins of a
# few days, local midnights in any timezone) without leaving the calendar.
_FIRST_DAY, _LAST_DAY = date(1900, 1, 1), date(9998, 12, 31)


def _calendar_date(value: Any) -> Any:
    # pydantic's lax mode reads a number (or a string of digits) as seconds since 1970: "from=0" would
    # be 1970-01-01. A date here is only ever the text YYYY-MM-DD.
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _DATE_RE.match(value):
        raise PydanticCustomError("date_format", "a date is a YYYY-MM-DD string")
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return value  # 2026-02-30: pydantic's own error says why
    # At the calendar's ends, day arithmetic overflowed (an A report from 0001-01-01 broke its stream).
    if not _FIRST_DAY <= day <= _LAST_DAY:
        raise PydanticCustomError("date_range", "a date lies between 1900-01-01 and 9998-12-31")
    return day


def _rfc3339(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _DATETIME_RE.match(value):
        raise PydanticCustomError("datetime_format",
                                  "a date-time is an RFC 3339 string with an offset, e.g. 2026-01-31T12:00:00Z")
    return value


def _in_utc(value: datetime) -> datetime:
    # Stored and compared in UTC: 0001-01-01T00:00:00+01:00 has no UTC instant (it overflowed later, a 500).
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:
        raise PydanticCustomError("datetime_range", "the date-time is out of range once in UTC") from None


CalendarDate = Annotated[date, BeforeValidator(_calendar_date)]
Rfc3339DateTime = Annotated[AwareDatetime, BeforeValidator(_rfc3339), AfterValidator(_in_utc)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("NUL characters are not allowed")
        return value
