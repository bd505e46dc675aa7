"""The poll: every connection reads the orders updated since its cursor (default every 10 minutes), so an
order whose webhooks were all lost (WooCommerce never retries; any platform drops some) is still invoiced.

The cursor is the newest ``updated_at`` seen; each poll starts ``OVERLAP`` before it, because a platform's
list is not a log: an order updated at the cursor's second, or committed late on the platform's side, could
otherwise fall between two polls. Seeing an order twice costs one comparison (its version is decided).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from stalela.config import Settings
from stalela.connectors import mapping, processing, service
from stalela.connectors.clients.base import PlatformError
from stalela.connectors.clients.woocommerce import WooCommerceClient
from stalela.connectors.models import Connection
from stalela.connectors.platforms import client_for
from stalela.connectors.repository import ConnectionRepository
from stalela.db.base import utcnow
from stalela.db.session import Database
from stalela.kit.clock import rfc3339
from stalela.observability.logging import get_logger
from stalela.tenancy.context import bind_platform

log = get_logger("stalela.connectors")
OVERLAP = timedelta(minutes=5)
ROUND = 20  # connections per scheduler round


@dataclass
class PollResult:
    seen: int = 0
    changed: int = 0
    cursor: str | None = None
    error: str | None = None
    alerts: list[str] | None = None


async def poll_due(db: Database, settings: Settings, now: datetime | None = None) -> int:
    """Poll the connections that are due (claimed first, so two workers do not poll one connection)."""
    now = now or utcnow()
    async with db.transaction() as session:
        await bind_platform(session)
        repo = ConnectionRepository(session)
        claimed = [c for c in await repo.due(now, ROUND)
                   if await repo.claim_poll(c, now + timedelta(seconds=c.poll_interval_seconds))]
    for connection in claimed:
        try:
            await poll_one(db, settings, connection)
        except processing.TenantNotWritable:
            continue  # suspended: polled again at its next interval
        except Exception:  # one connection's failure (an outage, a bug) must not cost the others their poll
            log.exception("connector_poll_failed", connection_id=connection.id)
    return len(claimed)


def _start(cursor: str | None) -> str | None:
    if not cursor:
        return None
    return rfc3339(datetime.fromisoformat(cursor.replace("Z", "+00:00")) - OVERLAP)


async def poll_one(db: Database, settings: Settings, connection: Connection) -> PollResult:
    result = PollResult(cursor=connection.poll_cursor, alerts=[])
    client = client_for(db, settings, connection)
    hook = service.webhook_id(connection)
    if isinstance(client, WooCommerceClient) and hook:
        try:
            alert = await client.check_webhook(str(hook))
        except PlatformError as exc:  # a stale id or read-only keys: said, and the poll goes on regardless
            alert = f"the WooCommerce webhook {hook} could not be checked: {exc.code}: {exc}"
        if alert:  # WooCommerce disabled it after five failures: re-enabled (or not), and said
            log.warning("connector_webhook_checked", connection_id=connection.id, detail=alert)
            result.alerts.append(alert)
    newest = connection.poll_cursor
    try:
        async for page in client.updated_since(_start(connection.poll_cursor)):
            for order in page:
                result.seen += 1
                try:
                    outcome = await processing.process(db, settings, connection, client, order)
                    version = mapping.order_version(connection.platform, order)
                except (ValueError, processing.NotThisSeller) as exc:  # unreadable, or not this store's sale
                    log.warning("connector_poll_order_skipped", connection_id=connection.id, error=str(exc))
                    continue
                result.changed += outcome.changed
                newest = max(newest or version, version)
        # Only a whole walk moves the cursor: pages are not in updated_at order on every platform (Mercado
        # Libre sorts by creation), so an error midway may leave an older change on a page not read yet.
        result.cursor = newest
    except PlatformError as exc:
        result.error = f"{exc.code}: {exc}"
        log.warning("connector_poll_platform_error", connection_id=connection.id, error=result.error)
    await _save(db, connection, result)
    return result


async def _save(db: Database, connection: Connection, result: PollResult) -> None:
    """The cursor moves on only over orders that were decided (an error stops the walk where it was)."""
    async with db.transaction() as session:
        await bind_platform(session)
        row = await ConnectionRepository(session).get(connection.id, lock=True)
        if row is None:
            return
        if result.cursor and (row.poll_cursor is None or result.cursor > row.poll_cursor):
            row.poll_cursor = result.cursor
        row.last_sync_at = utcnow()
        message = result.error or ("; ".join(result.alerts) if result.alerts else None)
        if message or row.last_error:
            row.last_error = message
            row.last_error_at = utcnow() if message else row.last_error_at
