from __future__ import annotations

from typing import Literal

from pydantic import Field

from stalela.kit.schemas import CalendarDate, StrictModel

Format = Literal["json", "pdf", "csv", "xlsx"]


class ZClose(StrictModel):
    business_day: CalendarDate | None = Field(
        None, description="The day to close (an earlier day still open); default: today in the outlet's timezone.")
