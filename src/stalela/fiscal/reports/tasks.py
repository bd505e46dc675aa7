"""The Z scheduler: close every open business day once its local midnight plus the grace period passed.

Runs in every process with in-process workers (and in `stalela worker`). Several schedulers, and
people closing days over the API at the same moment, are fine: closing is idempotent and serialized
per outlet (``service.close_day``). Days are closed oldest first, so an outlet's Z reports stay in
day order. Only days with invoices have figures and are closed automatically; closing a day without
sales (a zero Z) is an explicit request.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from stalela.auth.principal import Principal
from stalela.config import Settings
from stalela.db.base import utcnow
from stalela.db.session import Database
from stalela.errors import StalelaError
from stalela.fiscal.core.reports import day_end
from stalela.fiscal.reports import service
from stalela.fiscal.invoices.repository import DayFiguresRepository
from stalela.kit.periodic import every
from stalela.observability.logging import get_logger
from stalela.tenancy.context import bind_platform, bind_tenant

log = get_logger("stalela.reports")


async def due_days(db: Database, settings: Settings, now: datetime) -> list[tuple[str, str, object]]:
    """(tenant, outlet, day) of open days whose close is due at ``now``, oldest first."""
    grace = timedelta(minutes=settings.z_grace_minutes)
    async with db.transaction(readonly=True) as session:
        await bind_platform(session)
        # Coarse in SQL (no local date is more than a day ahead of UTC), exact per timezone here.
        candidates = await DayFiguresRepository(session).all_open(up_to=(now + timedelta(days=1)).date())
    return [(t, o, d) for t, o, d, tz in candidates if now >= day_end(d, tz) + grace]


async def close_due_days(db: Database, settings: Settings, now: datetime | None = None) -> int:
    """Close what is due; returns the number of Z reports this call created."""
    created = 0
    for tenant_id, outlet_id, day in await due_days(db, settings, now or utcnow()):
        try:
            async with db.transaction() as session:
                await bind_tenant(session, tenant_id)
                result = await service.close_day(session, settings, Principal(kind="api_key", tenant_id=tenant_id),
                                                 outlet_id, day, closed_by="scheduler")
                created += result.created
        except StalelaError as exc:  # e.g. an earlier day of the outlet failed: retried next round
            log.warning("z_close_refused", tenant_id=tenant_id, outlet_id=outlet_id, business_day=str(day),
                        code=exc.code, detail=exc.detail)
        except Exception:  # one outlet's failure (its signer, say) must not stop the others
            log.exception("z_close_failed", tenant_id=tenant_id, outlet_id=outlet_id, business_day=str(day))
    if created:
        log.info("z_reports_closed", count=created)
    return created


async def z_scheduler(db: Database, settings: Settings) -> None:
    await every(settings.z_scheduler_interval_seconds, lambda: close_due_days(db, settings), log, "z_scheduler_failed")
