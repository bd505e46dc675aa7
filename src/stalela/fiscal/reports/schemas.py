from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field

from stalela.kit.schemas import StrictModel

Format = Literal["json", "pdf", "csv", "xlsx"]


class ZClose(StrictModel):
    business_day: date | None = Field(
        None, description="The day to close (an earlier day still open); default: today in the outlet's timezone.")
