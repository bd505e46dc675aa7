"""Cursor pagination shared by every list endpoint: ``limit`` + ``starting_after``, newest first."""
from __future__ import annotations

from typing import Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, ConfigDict

from stalela.kit.openapi import answers

T = TypeVar("T")


class PageParams(BaseModel):
    limit: int = 20
    starting_after: str | None = None


@answers(400)  # invalid_cursor: the repositories check that starting_after names an object of the list
def page_params(
    limit: int = Query(20, ge=1, le=100, description="Page size (1-100)."),
    starting_after: str | None = Query(
        None, pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="Return objects after this id (the last id of the previous page).",
    ),
) -> PageParams:
    return PageParams(limit=limit, starting_after=starting_after)


class Page(BaseModel, Generic[T]):
    model_config = ConfigDict(extra="forbid")
    data: list[T]
    has_more: bool


def page_of(rows: list, limit: int) -> tuple[list, bool]:
    """Repositories fetch ``limit + 1`` rows; the extra one only tells whether more exist."""
    return rows[:limit], len(rows) > limit
