"""A platform's webhook, from raw bytes to a stored delivery and its outbox event, in one short transaction:
the answer must leave within the platforms' deadlines (Mercado Libre: 500 ms), so nothing here calls the
platform or seals; ``processing`` does that from the outbox.

This module is a boundary, like a worker: it owns its transactions, because a database outage is not an
error here but a reason to spool (``spool.py``) and still answer 2xx.
"""
from __future__ import annotations

import json
from datetime import datetime

from stalela.config import Settings
from stalela.connectors import credentials, signatures, spool, topics
from stalela.connectors.models import Connection, ConnectorDelivery
from stalela.connectors.repository import ConnectionRepository, DeliveryRepository
from stalela.connectors.schemas import Received
from stalela.db.base import utcnow
from stalela.db.session import Database
from stalela.errors import DatabaseUnavailable, NotFound, Unauthorized
from stalela.kit.ids import new_id
from stalela.observability.logging import get_logger
from stalela.outbox import service as outbox
from stalela.tenancy.context import bind_platform, bind_tenant

log = get_logger("stalela.connectors")
TOPIC = "connector.delivery"
# The headers kept with a delivery: what processing and an audit need, nothing else (no cookies, no auth).
KEPT = ("x-shopify-topic", "x-shopify-event-id", "x-shopify-triggered-at", "x-shopify-shop-domain",
        "x-shopify-webhook-id", "x-wc-webhook-topic", "x-wc-webhook-delivery-id", "x-wc-webhook-id",
        "x-wc-webhook-source", "content-type")


class BadSignature(Unauthorized):
    code = "webhook_signature_invalid"
    title = "The webhook's signature does not match its body"


async def receive(db: Database, settings: Settings, platform: str, connection_id: str, headers: dict[str, str],
                  body: bytes) -> Received:
    """Store the delivery, or spool it if the database is down; raise 404 (unknown connection) or 401."""
    kept = {k: headers[k] for k in KEPT if k in headers}
    sig = signatures.SIGNATURE_HEADERS.get(platform)
    if sig and sig in headers:
        kept[sig] = headers[sig]
    try:
        return await store(db, settings, platform, connection_id, kept, body, utcnow(), via="webhook")
    except DatabaseUnavailable:
        path = spool.put(settings.effective_connectors_spool_dir, settings.connectors_spool_max_files, platform,
                         connection_id, kept, body)
        log.warning("connector_webhook_spooled", platform=platform, connection_id=connection_id, file=path.name)
        return Received(note="spooled: stored once the database is back")


async def store(db: Database, settings: Settings, platform: str, connection_id: str, headers: dict[str, str],
                body: bytes, received_at: datetime, *, via: str) -> Received:
    async with db.transaction() as session:
        await bind_platform(session)
        connection = await ConnectionRepository(session).get(connection_id)
        if connection is None or connection.platform != platform or connection.status == "deleted":
            raise NotFound("no such connection", code="connection_not_found")
        if topics.is_ping(platform, headers, body):
            return Received(note="ping")
        _check_signature(settings, connection, headers, body)
        if connection.status != "active":
            return Received(note="paused: the next poll after resuming catches up")
        try:
            delivery = topics.read(platform, headers, body)
        except topics.Unreadable as exc:
            log.warning("connector_webhook_unreadable", connection_id=connection_id, reason=str(exc))
            return Received(note=f"ignored: {exc}")
        if not topics.relevant(platform, delivery):
            return Received(note=f"ignored: topic {delivery.topic or 'none'}")
        await bind_tenant(session, connection.tenant_id)
        row = ConnectorDelivery(tenant_id=connection.tenant_id, id=new_id("dlv"), connection_id=connection.id,
                                topic=delivery.topic[:64], dedup_key=delivery.dedup_key[:200],
                                order_ref=delivery.order_ref, body=body, headers=json.dumps(headers), via=via,
                                status="received", received_at=received_at)
        if not await DeliveryRepository(session).add_new(row):
            return Received(note="duplicate")
        outbox.enqueue(session, connection.tenant_id, TOPIC, {"connection_id": connection.id, "delivery_id": row.id})
        return Received(delivery_id=row.id)


def _check_signature(settings: Settings, connection: Connection, headers: dict[str, str], body: bytes) -> None:
    if connection.platform == "mercadolibre":
        return  # unsigned: the body is only a pointer, and the order is read back with the seller's token
    secret = credentials.webhook_secret(connection.platform, credentials.read(settings, connection))
    if not signatures.verify(connection.platform, secret or "", body,
                             headers.get(signatures.SIGNATURE_HEADERS[connection.platform])):
        raise BadSignature("the signature does not match the body under this connection's secret")


async def drain_spool(db: Database, settings: Settings) -> int:
    """Store what the spool holds (the API process's own disk); a bad one is logged and dropped."""
    async def one(item: spool.Spooled) -> None:
        try:
            await store(db, settings, item.platform, item.connection_id, item.headers, item.body, item.received_at,
                        via="spool")
        except (NotFound, BadSignature) as exc:
            log.warning("connector_spooled_delivery_dropped", connection_id=item.connection_id, code=exc.code,
                        file=item.path.name)
    return await spool.drain(settings.effective_connectors_spool_dir, one)
