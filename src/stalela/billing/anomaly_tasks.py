"""The daily detection over every tenant: what the billing cycle (and the CLI) runs for a day."""
from __future__ import annotations

from datetime import date
from typing import Any

from stalela.billing import anomaly_service as service
from stalela.billing.anomaly_repository import AnomalyRepository
from stalela.config import Settings
from stalela.db.session import Database
from stalela.observability.logging import get_logger
from stalela.tenancy.context import bind_platform, bind_tenant

log = get_logger("stalela.billing.anomalies")


async def tenants_to_check(db: Database, day: date) -> list[str]:
    async with db.transaction(readonly=True) as session:
        await bind_platform(session)
        return await AnomalyRepository(session).tenants_used_on(day)


async def detect_tenant(db: Database, settings: Settings, tenant_id: str, day: date,
                        price: service.Price = service.rating_price) -> list[dict[str, Any]]:
    """One tenant's detection in its own transaction: the anomalies stored now (none on a re-run)."""
    async with db.transaction() as session:
        await bind_tenant(session, tenant_id)
        return await service.detect(session, settings, tenant_id, day, price)


async def detect_all(db: Database, settings: Settings, day: date, *, tenant_id: str | None = None,
                     price: service.Price = service.rating_price) -> list[dict[str, Any]]:
    """Detect ``day``'s anomalies for every tenant with usage that day (or only ``tenant_id``), each
    tenant in its own transaction; returns the anomalies stored by this run. Idempotent: run it again,
    or concurrently, and nothing more is stored, sent or counted. One tenant's failure is logged and
    does not stop the others (the next run retries it: nothing of it was stored)."""
    tenants = [tenant_id] if tenant_id else await tenants_to_check(db, day)
    stored: list[dict[str, Any]] = []
    for tenant in tenants:
        try:
            found = await detect_tenant(db, settings, tenant, day, price)
        except Exception:
            log.exception("anomaly_detection_failed", tenant_id=tenant, day=day.isoformat())
            continue
        if found:
            log.info("anomalies_detected", tenant_id=tenant, day=day.isoformat(), count=len(found))
        stored.extend(found)
    return stored
