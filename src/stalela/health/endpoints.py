from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from stalela.health.fleet import health_of
from stalela.migrations import migration_status, revision_text
from stalela.kit.jsonbody import JSONRoute

router = APIRouter(route_class=JSONRoute, tags=["health"])


@router.get("/healthz")
async def healthz():
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Not ready: the database is unreachable or not migrated",
                                        "content": {"application/json": {"schema": {}}}}})
async def readyz(request: Request):
    """The control plane's database answers and its schema is at the latest migration; the dedicated databases
    this process uses are reported under ``dedicated`` (a failing one makes the status ``degraded``, or 503 with
    ``STALELA_READYZ_REQUIRE_DEDICATED``)."""
    try:
        current, head = await migration_status(request.app.state.db.engine)
    except Exception as exc:  # any failure to reach the database means "not ready"
        return JSONResponse({"status": "unavailable", "database": "unreachable", "detail": type(exc).__name__},
                            status_code=503)
    # The schema's revision and the one this code expects, each a single head ("0026"), never a list.
    migration = {"migration": revision_text(current), "expected": revision_text(head)}
    if current != head:
        return JSONResponse({"status": "unavailable", "database": "ok", **migration}, status_code=503)
    body = {"status": "ok", "database": "ok", **migration}
    try:
        body["dedicated"] = dedicated = await health_of(request.app.state.db).readiness()
    except Exception as exc:  # the registry unreadable though the database answered: say so, stay ready
        body["dedicated"] = {"error": type(exc).__name__}
        return body
    if dedicated["failing"]:
        body["status"] = "degraded"
        if request.app.state.settings.readyz_require_dedicated:
            return JSONResponse({**body, "status": "unavailable"}, status_code=503)
    return body


bench_router = APIRouter(route_class=JSONRoute, tags=["bench"], include_in_schema=False)


@bench_router.post("/_bench/noop")
async def bench_noop(body: dict):
    """The benchmarks' baseline: parse a JSON body, answer JSON, touch nothing else."""
    return {"ok": True, "size": len(body)}
