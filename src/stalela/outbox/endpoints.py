"""Operator API for the outbox: backlog per topic, dead letters, replay."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import Field

from stalela.auth.dependencies import DbSession, OperatorPrincipal
from stalela.kit.pagination import PageParams, page_params
from stalela.kit.schemas import StrictModel
from stalela.outbox import service
from stalela.kit.jsonbody import JSONRoute

router = APIRouter(route_class=JSONRoute, prefix="/v1/ops/outbox", tags=["operations"])
Topic = Annotated[str | None, Query(max_length=64, pattern=r"^[a-z0-9_.]+$")]


class ReplayRequest(StrictModel):
    ids: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]] | None = Field(None, max_length=1000)
    topic: str | None = Field(None, max_length=64, pattern=r"^[a-z0-9_.]+$")


@router.get("")
async def outbox_stats(session: DbSession, _: OperatorPrincipal):
    """Pending and dead events per topic, with the age of the oldest pending one."""
    return {"topics": await service.stats(session)}


@router.get("/dead")
async def dead_letters(session: DbSession, _: OperatorPrincipal, paging: Annotated[PageParams, Depends(page_params)],
                       topic: Topic = None):
    rows, more = await service.dead_letters(session, topic, paging.limit, paging.starting_after)
    return {"data": rows, "has_more": more}


@router.post("/replay")
async def replay(body: ReplayRequest, session: DbSession, principal: OperatorPrincipal):
    """Put dead events back in the queue with a fresh attempt budget."""
    return {"replayed": await service.replay(session, body.ids, body.topic, actor=principal.platform_actor)}
