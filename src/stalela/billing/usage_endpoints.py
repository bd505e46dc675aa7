"""Usage routes: record events (one, or a batch answered per item), void them, export them, read the days."""
from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query, Response

from stalela.auth.dependencies import AppSettings, Can, DbSession
from stalela.auth.permissions import Perm
from stalela.billing import usage_schemas as schemas
from stalela.billing import usage_service as service
from stalela.billing.usage_math import day_of
from stalela.errors import ValidationFailed
from stalela.kit.jsonbody import JSONRoute
from stalela.kit.pagination import PageParams, page_params
from stalela.kit.schemas import CalendarDate, Rfc3339DateTime

router = APIRouter(route_class=JSONRoute, prefix="/v1/usage", tags=["usage"])
Writer = Can(Perm.USAGE_WRITE)
Reader = Can(Perm.USAGE_READ)
Paging = Annotated[PageParams, Depends(page_params)]
EventId = Annotated[str, Path(pattern=schemas.EVENT_ID_PATTERN)]
ResourceName = Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
MAX_DAYS = 366


@router.post("/events", status_code=201, response_model=schemas.RecordedOut,
             responses={200: {"description": "A replay: the original event, duplicate true"},
                        409: {"description": "usage_event_conflict: the id was recorded with another payload"}})
async def record_event(body: schemas.UsageEventIn, principal: Writer, session: DbSession, settings: AppSettings,
                       response: Response):
    """Record one event, exactly once per ``event_id``."""
    (outcome,) = await service.record(session, settings, principal.tenant_id, [body])
    if outcome.problem is not None:
        raise outcome.problem
    response.status_code = outcome.status
    return {**outcome.event, "duplicate": outcome.duplicate}


@router.post("/events/batch", response_model=schemas.BatchOut)
async def record_batch(body: schemas.UsageBatchIn, principal: Writer, session: DbSession, settings: AppSettings):
    """Up to 1,000 events; the answer lists each in order with its own status (201, 200 duplicate, 409,
    422) and, when refused, its problem. One bad event never fails the others."""
    outcomes = await service.record(session, settings, principal.tenant_id, body.events)
    return {"data": [{"index": i, "status": o.status, "duplicate": o.duplicate if o.event else None,
                      "event": o.event, "problem": o.problem.problem() if o.problem else None}
                     for i, o in enumerate(outcomes)]}


@router.post("/events/{event_id}/void", status_code=201, response_model=schemas.VoidOut,
             responses={200: {"description": "Voided before: the first void, duplicate true"},
                        409: {"description": "usage_event_metered: Stalela's own metering is not voided"}})
async def void_event(event_id: EventId, principal: Writer, session: DbSession, response: Response,
                     body: Annotated[schemas.VoidIn | None, Body()] = None):
    """Append the compensating record of an event (the event itself never changes)."""
    void, created = await service.void(session, principal.tenant_id, event_id, body.reason if body else None)
    response.status_code = 201 if created else 200
    return {**void, "duplicate": not created}


@router.get("/events", response_model=schemas.EventPage)
async def list_events(principal: Reader, session: DbSession, paging: Paging, resource: ResourceName = None,
                      since: Annotated[Rfc3339DateTime | None, Query(alias="from",
                                                                     description="occurred_at >= this")] = None,
                      until: Annotated[Rfc3339DateTime | None, Query(alias="to", description="occurred_at < this")] = None):
    """The tenant's events, newest first (the export to recompute a bill from), each with its void time."""
    rows, more = await service.list_events(session, principal.tenant_id, resource, since, until, paging.limit,
                                           paging.starting_after)
    return {"data": rows, "has_more": more}


@router.get("/daily", response_model=schemas.DailyPage)
async def daily(principal: Reader, session: DbSession, resource: ResourceName = None,
                day_from: Annotated[CalendarDate | None, Query(alias="from", description="First UTC day, inclusive "
                                                                                        "(default: this month's first)")] = None,
                day_to: Annotated[CalendarDate | None, Query(alias="to", description="Last UTC day, inclusive "
                                                                                    "(default: today)")] = None):
    """Usage per UTC day, the same figures bills use (events not yet aggregated included). Gauges are
    time-weighted daily averages."""
    today = day_of(service.clock.now())
    end = day_to or today
    start = day_from or end.replace(day=1)
    if start > end:
        raise ValidationFailed("from is after to", code="usage_range_invalid", field="from")
    if (end - start).days >= MAX_DAYS:
        raise ValidationFailed(f"at most {MAX_DAYS} days per request", code="usage_range_too_long", field="to")
    rows = await service.daily(session, principal.tenant_id, resource, start, end + timedelta(days=1))
    return {"data": [{"day": r.day, "resource": r.resource, "quantity": format(r.quantity, "f")} for r in rows]}
