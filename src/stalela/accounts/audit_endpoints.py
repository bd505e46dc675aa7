from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from stalela.audit.models import AuditEntry
from stalela.audit.service import render, verify_chain
from stalela.auth.dependencies import Allow, DbSession
from stalela.auth.permissions import Perm
from stalela.auth.principal import Principal
from stalela.kit.schemas import PositiveInt64
from stalela.kit.jsonbody import JSONRoute

router = APIRouter(route_class=JSONRoute, prefix="/v1", tags=["audit"])


@router.get("/audit-log")
async def audit_log(session: DbSession, principal: Annotated[Principal, Allow(Perm.AUDIT_READ)],
                    limit: Annotated[int, Query(ge=1, le=500)] = 100,
                    before_seq: Annotated[PositiveInt64 | None, Query()] = None):
    """The tenant's audit log, newest first (page with before_seq), each entry with its chain hash."""
    stmt = select(AuditEntry)
    if before_seq is not None:
        stmt = stmt.where(AuditEntry.seq < before_seq)
    rows = list((await session.execute(stmt.order_by(AuditEntry.seq.desc()).limit(limit + 1))).scalars())
    return {"data": [render(e) for e in rows[:limit]], "has_more": len(rows) > limit}


@router.get("/audit-log/verify")
async def audit_log_verify(session: DbSession, principal: Annotated[Principal, Allow(Perm.AUDIT_READ)]):
    """Recompute the whole chain server-side; `stalela verify --audit-log` does the same offline."""
    rows = (await session.execute(select(AuditEntry).order_by(AuditEntry.seq))).scalars()
    checked, problem = verify_chain(rows)
    return {"entries": checked, "valid": problem is None, "problem": problem}
