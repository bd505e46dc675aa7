from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from stalela.migrations import migration_status
from stalela.kit.jsonbody import JSONRoute

router = APIRouter(route_class=JSONRoute, tags=["health"])


@router.get("/healthz")
async def healthz():
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Not ready: the database is unreachable or not migrated",
                                        "content": {"application/json": {"schema": {}}}}})
async def readyz(request: Request):
    """The database answers and its schema is at the latest migration."""
    try:
        current, head = await migration_status(request.app.state.db.engine)
    except Exception as exc:  # any failure to reach the database means "not ready"
        return JSONResponse({"status": "unavailable", "database": "unreachable", "detail": type(exc).__name__},
                            status_code=503)
    if current != head:
        return JSONResponse({"status": "unavailable", "database": "ok", "migration": ",".join(current),
                             "expected": ",".join(head)}, status_code=503)
    return {"status": "ok", "database": "ok", "migration": ",".join(current)}


bench_router = APIRouter(route_class=JSONRoute, tags=["bench"], include_in_schema=False)


@bench_router.post("/_bench/noop")
async def bench_noop(body: dict):
    """The benchmarks' baseline: parse a JSON body, answer JSON, touch nothing else."""
    return {"ok": True, "size": len(body)}
