"""The connectors' background work: deliveries and write-backs from the outbox, the poll that catches what
webhooks missed, and the drain of the webhook spool. Every handler is idempotent (at-least-once delivery):
an order's decision is guarded by its row and its seal key, a write-back by the platform's own semantics."""
from __future__ import annotations

import asyncio
import json

from stalela.config import Settings
from stalela.connectors import figures as _figures  # noqa: F401  (registers the analytics figures)
from stalela.connectors import intake, polling, processing, service, topics
from stalela.connectors.clients import base as clients
from stalela.connectors.clients.base import OrderNotFound, PlatformError
from stalela.connectors.models import Connection
from stalela.connectors.platforms import client_for
from stalela.connectors.repository import ConnectionRepository, DeliveryRepository, OrderRepository
from stalela.db.base import utcnow
from stalela.db.session import Database
from stalela.errors import DatabaseUnavailable
from stalela.fiscal.invoices import service as invoices
from stalela.kit.periodic import every
from stalela.observability.logging import get_logger
from stalela.outbox.registry import Event, HandlerContext, RetryLater, handles
from stalela.tenancy.context import bind_platform, bind_tenant
from stalela.tenancy.repository import TenantRepository

log = get_logger("stalela.connectors")
TENANT_WAIT_SECONDS = 300.0  # a suspended tenant's orders are looked at again this often


async def load_connection(db: Database, connection_id: str) -> Connection | None:
    async with db.transaction(readonly=True) as session:
        await bind_platform(session)
        return await ConnectionRepository(session).get(connection_id)


async def note_error(db: Database, connection: Connection, message: str | None) -> None:
    """The connection's last error as the console shows it (None: the last call worked)."""
    async with db.transaction() as session:
        await bind_platform(session)
        row = await ConnectionRepository(session).get(connection.id, lock=True)
        if row is not None and (row.last_error != message or message):
            row.last_error, row.last_error_at = message, utcnow() if message else row.last_error_at


async def _finish(db: Database, tenant_id: str, delivery_id: str, status: str, outcome: str) -> None:
    async with db.transaction() as session:
        await bind_tenant(session, tenant_id)
        row = await DeliveryRepository(session).get(delivery_id)
        if row is not None:
            row.status, row.outcome, row.processed_at = status, outcome[:200], utcnow()


@handles(intake.TOPIC)
async def deliver(ctx: HandlerContext, event: Event) -> None:
    connection = await load_connection(ctx.db, event.payload["connection_id"])
    delivery_id = event.payload["delivery_id"]
    if connection is None or connection.status != "active":
        await _finish(ctx.db, event.tenant_id, delivery_id, "ignored", "connection paused or deleted")
        return
    async with ctx.db.transaction(readonly=True) as session:
        await bind_tenant(session, event.tenant_id)
        row = await DeliveryRepository(session).get(delivery_id)
    if row is None or row.status != "received":
        return  # done by an earlier attempt
    parsed = topics.read(connection.platform, json.loads(row.headers), bytes(row.body))
    client = client_for(ctx.db, ctx.settings, connection)
    try:
        if parsed.order is not None:
            outcome = await processing.process(ctx.db, ctx.settings, connection, client, parsed.order, from_payload=True)
        else:
            order = await client.fetch_order(parsed.order_ref)
            outcome = await processing.process(ctx.db, ctx.settings, connection, client, order)
    except (OrderNotFound, ValueError, processing.NotThisSeller) as exc:  # gone, unreadable, or not a sale of ours
        await _finish(ctx.db, event.tenant_id, delivery_id, "ignored", f"{type(exc).__name__}: {exc}")
        return
    except processing.TenantNotWritable as exc:
        raise RetryLater(str(exc), TENANT_WAIT_SECONDS) from None
    except PlatformError as exc:
        await note_error(ctx.db, connection, f"{exc.code}: {exc}")
        if exc.transient:
            raise  # the outbox retries with backoff
        await _finish(ctx.db, event.tenant_id, delivery_id, "ignored", f"{exc.code}: {exc}")
        return
    await _finish(ctx.db, event.tenant_id, delivery_id, "processed", f"{outcome.status}: {outcome.note}".strip(": "))


@handles(processing.WRITE_BACK_TOPIC)
async def write_back(ctx: HandlerContext, event: Event) -> None:
    connection = await load_connection(ctx.db, event.payload["connection_id"])
    if connection is None or connection.status == "deleted":
        return
    key = event.payload["order_key"]
    async with ctx.db.transaction(readonly=True) as session:
        await bind_tenant(session, event.tenant_id)
        row = await OrderRepository(session).get(connection.id, key)
        if row is None or not row.invoice_id or row.write_back == "done":
            return
        jurisdiction = (await TenantRepository(session).get(event.tenant_id)).jurisdiction
        principal = processing.principal_for(connection, jurisdiction)
        invoice = (await invoices.render_many(session, ctx.settings,
                                              [await invoices.get_invoice(session, principal, row.invoice_id)]))[0]
    client = client_for(ctx.db, ctx.settings, connection)

    async def pdf() -> bytes:
        async with ctx.db.transaction(readonly=True) as s:
            await bind_tenant(s, event.tenant_id)
            return (await invoices.invoice_pdf(s, ctx.settings, principal, row.invoice_id))[1]

    try:
        order = await client.fetch_order(row.order_id)
        await client.write_back(order, invoice["fiscal_number"], invoice.get("qr") or "", pdf)
    except PlatformError as exc:
        await _written(ctx.db, event.tenant_id, connection.id, key, "failed", f"{exc.code}: {exc}")
        if exc.transient or event.attempts < ctx.settings.outbox_max_attempts:
            raise  # retried by the outbox with backoff; the console shows the last error meanwhile
        return
    await _written(ctx.db, event.tenant_id, connection.id, key, "done", None)


async def _written(db: Database, tenant_id: str, connection_id: str, key: str, status: str, error: str | None) -> None:
    async with db.transaction() as session:
        await bind_tenant(session, tenant_id)
        row = await OrderRepository(session).get(connection_id, key, lock=True)
        if row is not None and row.write_back != "done":
            row.write_back, row.write_back_error = status, error


@handles(service.RETRY_TOPIC)
async def retry(ctx: HandlerContext, event: Event) -> None:
    """A person's retry of a parked order (after fixing the connection's options or the order)."""
    connection = await load_connection(ctx.db, event.payload["connection_id"])
    if connection is None or connection.status == "deleted":
        return
    client = client_for(ctx.db, ctx.settings, connection)
    try:
        order = await client.fetch_order(event.payload["order_id"])
    except OrderNotFound:
        return
    try:
        await processing.process(ctx.db, ctx.settings, connection, client, order)
    except processing.NotThisSeller:
        return
    except processing.TenantNotWritable as exc:
        raise RetryLater(str(exc), TENANT_WAIT_SECONDS) from None


async def poll_scheduler(db: Database, settings: Settings) -> None:
    """Poll every connection whose poll is due (``polling.poll_due``), forever."""
    await every(settings.connectors_poll_tick_seconds, lambda: polling.poll_due(db, settings), log,
                "connector_poll_failed")


async def spool_drainer(db: Database, settings: Settings, seconds: float = 2.0) -> None:
    """In every API process: store what its spool kept during a database outage, once the database is back.
    Also closes the process's platform clients when cancelled (the app's shutdown)."""
    try:
        await _drain_forever(db, settings, seconds)
    finally:
        await clients.close()


async def _drain_forever(db: Database, settings: Settings, seconds: float) -> None:  # noqa: D103
    while True:
        await asyncio.sleep(seconds)
        try:
            stored = await intake.drain_spool(db, settings)
            if stored:
                log.info("connector_spool_drained", stored=stored)
        except DatabaseUnavailable:
            continue
        except Exception:
            log.exception("connector_spool_drain_failed")

