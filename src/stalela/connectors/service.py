"""Connections: create (with an OAuth code exchanged beforehand), list, pause, resume, delete, and their
orders as the console and the API show them. Flushes, never commits: the request owns the transaction."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta, timezone
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from stalela.audit import service as audit
from stalela.auth.principal import Principal
from stalela.config import Settings
from stalela.connectors import credentials, mapping, schemas
from stalela.connectors.models import Connection, ConnectorOrder
from stalela.connectors.repository import ConnectionRepository, DeliveryRepository, OrderRepository
from stalela.db.base import utcnow
from stalela.errors import Conflict, Forbidden, NotFound, ValidationFailed
from stalela.kit.ids import new_id
from stalela.outbox import service as outbox
from stalela.tenancy.repository import OutletRepository, TenantRepository

RETRY_TOPIC = "connector.retry"  # tasks.py handles it
STATUSES = ("invoiced", "parked", "pending", "skipped", "credited", "dismissed")


@dataclass(frozen=True)
class Prepared:
    """A connection request after its network steps (URL vetted, OAuth code exchanged), which run before
    the request's transaction so that it holds no lock while a platform answers."""

    body: schemas.ConnectionCreate
    api_base_url: str
    secrets: dict[str, Any]
    token_ttl: int | None


def rfc3339_micro(moment: Any) -> str:
    """The form of ``mapping.order_version`` (UTC, microseconds), so a cursor compares with versions as text."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def checked_options(options: dict[str, Any], jurisdiction: str) -> dict[str, Any]:
    """The mapping options as the mapping reads them (a bad one is the caller's 422, not a parked order later);
    Argentina's receipts depend on the seller's own VAT condition, so it must be said."""
    try:
        parsed = mapping.MappingOptions.from_json(options)
    except (ValueError, TypeError) as exc:
        raise ValidationFailed(f"options: {exc}", code="connection_options_invalid", field="options") from None
    if jurisdiction == "AR" and not parsed.issuer_vat_condition:
        raise ValidationFailed("an Argentine seller's options say its VAT condition (issuer_vat_condition)",
                               code="connection_options_invalid", field="options.issuer_vat_condition")
    return options


WEBHOOK_ID = "webhook_id"  # kept beside the mapping options, not one of them


def _with_hook(options: dict[str, Any], webhook_id: str | None) -> dict[str, Any]:
    return {**options, WEBHOOK_ID: webhook_id} if webhook_id else dict(options)


def mapping_options(stored: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in stored.items() if k != WEBHOOK_ID}


def options_of(connection: Connection) -> mapping.MappingOptions:
    """The connection's mapping options, as the mapping reads them."""
    return mapping.MappingOptions.from_json(mapping_options(json.loads(connection.options or "{}")))


def webhook_id(connection: Connection) -> str | None:
    return json.loads(connection.options or "{}").get(WEBHOOK_ID)


def webhook_path(connection: Connection) -> str:
    return f"/v1/connectors/{connection.platform}/{connection.id}/webhooks"


def default_base(platform: str, shop: str) -> str:
    return credentials.DEFAULT_BASE[platform].format(shop=shop).rstrip("/")


async def create(session: AsyncSession, settings: Settings, principal: Principal, prepared: Prepared,
                 ip: str | None = None) -> Connection:
    body, connection_id = prepared.body, new_id("con")
    outlet = await OutletRepository(session).get(body.outlet_id)
    if outlet is None or not principal.can_use_outlet(body.outlet_id):
        raise ValidationFailed("no such outlet", code="outlet_not_found", field="outlet_id")
    options = checked_options(body.options or {}, principal.jurisdiction or "CD")
    repo = ConnectionRepository(session)
    if await repo.live_for_shop(body.platform, body.shop) is not None:
        raise Conflict("this store is already connected: delete that connection first", code="connection_exists",
                       field="shop")
    now = utcnow()
    connection = Connection(
        tenant_id=principal.tenant_id, id=connection_id, platform=body.platform, shop=body.shop,
        outlet_id=body.outlet_id, status="active", api_base_url=prepared.api_base_url,
        credentials=credentials.seal(settings, connection_id, prepared.secrets),
        options=json.dumps(_with_hook(options, body.webhook_id), sort_keys=True), poll_interval_seconds=body.poll_interval_seconds,
        next_poll_at=now, created_by=principal.actor, created_at=now, updated_at=now,
        poll_cursor=rfc3339_micro(body.backfill_since or now),
        token_expires_at=now + timedelta(seconds=prepared.token_ttl) if prepared.token_ttl else None)
    try:
        await repo.add(connection)
    except IntegrityError:  # the same store connected by a concurrent request a moment earlier
        raise Conflict("this store is already connected: delete that connection first", code="connection_exists",
                       field="shop") from None
    await audit.record(session, principal.tenant_id, principal.actor, "connection.created", connection.id,
                       {"platform": body.platform, "shop": body.shop, "outlet_id": body.outlet_id,
                        "credential_kinds": sorted(prepared.secrets)}, ip)
    return connection


async def get(session: AsyncSession, principal: Principal, connection_id: str) -> Connection:
    connection = await ConnectionRepository(session).get(connection_id)
    if connection is None or connection.status == "deleted":
        raise NotFound("no such connection", code="connection_not_found")
    if not principal.can_use_outlet(connection.outlet_id):
        raise Forbidden("this connection seals at an outlet you may not use", code="outlet_forbidden")
    return connection


async def render(session: AsyncSession, settings: Settings, connections: list[Connection]) -> list[dict[str, Any]]:
    ids = [c.id for c in connections]
    counts, last = await OrderRepository(session).counts(ids), await DeliveryRepository(session).last_received(ids)
    return [_view(settings, c, counts[c.id], last.get(c.id)) for c in connections]


def _view(settings: Settings, c: Connection, counts: dict[str, int], last_webhook: Any) -> dict[str, Any]:
    kinds = sorted(credentials.read(settings, c)) if c.status != "deleted" else []
    stored = json.loads(c.options)
    return {"id": c.id, "platform": c.platform, "shop": c.shop, "outlet_id": c.outlet_id, "status": c.status,
            "webhook_url": webhook_path(c), "credential_kinds": kinds, "options": mapping_options(stored),
            "webhook_id": stored.get(WEBHOOK_ID),
            "poll_interval_seconds": c.poll_interval_seconds, "poll_cursor": c.poll_cursor,
            "last_sync_at": c.last_sync_at, "last_webhook_at": last_webhook, "last_error": c.last_error,
            "last_error_at": c.last_error_at, "orders": {s: counts.get(s, 0) for s in STATUSES},
            "created_at": c.created_at}


async def list_connections(session: AsyncSession, principal: Principal, *, limit: int,
                           starting_after: str | None) -> tuple[list[Connection], bool]:
    rows, more = await ConnectionRepository(session).list(limit=limit, starting_after=starting_after)
    return [c for c in rows if principal.can_use_outlet(c.outlet_id)], more


async def update(session: AsyncSession, settings: Settings, principal: Principal, connection_id: str,
                 body: schemas.ConnectionUpdate, ip: str | None = None) -> Connection:
    connection = await get(session, principal, connection_id)
    connection = await ConnectionRepository(session).get(connection.id, lock=True)
    changes = body.model_dump(exclude_none=True)
    if "status" in changes and changes["status"] != connection.status:
        connection.status = changes["status"]
        if connection.status == "active":  # resumed: catch up at once from the cursor
            connection.next_poll_at = utcnow()
    if "options" in changes or "webhook_id" in changes:
        tenant = await TenantRepository(session).get(connection.tenant_id)
        current = json.loads(connection.options or "{}")
        hook = changes.get("webhook_id", current.pop(WEBHOOK_ID, None))
        options = checked_options(changes.get("options", current), tenant.jurisdiction)
        connection.options = json.dumps(_with_hook(options, hook), sort_keys=True)
    if "poll_interval_seconds" in changes:
        connection.poll_interval_seconds = changes["poll_interval_seconds"]
    if "credentials" in changes:
        try:
            schemas.check_credentials(connection.platform, set(changes["credentials"]), codes=False)
        except ValueError as exc:
            raise ValidationFailed(str(exc), code="validation_failed", field="credentials") from None
        connection.credentials = credentials.seal(settings, connection.id, changes["credentials"])
        connection.token_expires_at = None  # Mercado Libre: refreshed on first use
        changes["credentials"] = sorted(changes["credentials"])  # the audit log names the kinds, never values
    connection.updated_at = utcnow()
    await session.flush()
    await audit.record(session, connection.tenant_id, principal.actor, "connection.updated", connection.id,
                       changes, ip)
    return connection


async def delete(session: AsyncSession, settings: Settings, principal: Principal, connection_id: str,
                 ip: str | None = None) -> None:
    """The secrets are forgotten at once; the orders' rows stay (they link orders to sealed invoices)."""
    connection = await get(session, principal, connection_id)
    connection = await ConnectionRepository(session).get(connection.id, lock=True)
    connection.status, connection.next_poll_at, connection.updated_at = "deleted", None, utcnow()
    connection.credentials = credentials.seal(settings, connection.id, {})
    await session.flush()
    await audit.record(session, connection.tenant_id, principal.actor, "connection.deleted", connection.id, {}, ip)


async def orders(session: AsyncSession, principal: Principal, connection_id: str, status: str | None, *,
                 limit: int, starting_after: str | None) -> tuple[list[ConnectorOrder], bool]:
    await get(session, principal, connection_id)
    return await OrderRepository(session).list(connection_id, status, limit=limit, starting_after=starting_after)


async def order(session: AsyncSession, principal: Principal, connection_id: str, order_key: str) -> ConnectorOrder:
    await get(session, principal, connection_id)
    row = await OrderRepository(session).get(connection_id, order_key)
    if row is None:
        raise NotFound("no such order on this connection", code="connector_order_not_found")
    return row


async def dismiss(session: AsyncSession, principal: Principal, connection_id: str, order_key: str,
                  ip: str | None = None) -> ConnectorOrder:
    """A person takes a parked order over (invoices it by hand, or decides it needs none): it is never
    sealed automatically afterwards, whatever the platform sends."""
    await get(session, principal, connection_id)
    row = await OrderRepository(session).get(connection_id, order_key, lock=True)
    if row is None:
        raise NotFound("no such order on this connection", code="connector_order_not_found")
    if row.status != "parked":
        raise Conflict(f"only a parked order can be dismissed; this one is {row.status}", code="order_not_parked")
    row.status, row.updated_at = "dismissed", utcnow()
    await session.flush()
    await audit.record(session, row.tenant_id, principal.actor, "connector_order.dismissed",
                       f"{connection_id}:{order_key}", {"reason": row.reason, "difference": row.difference}, ip)
    return row


async def poll_soon(session: AsyncSession, principal: Principal, connection_id: str) -> Connection:
    connection = await get(session, principal, connection_id)
    connection = await ConnectionRepository(session).get(connection.id, lock=True)
    if connection.status != "active":
        raise Conflict(f"the connection is {connection.status}: resume it first", code="connection_not_active")
    connection.next_poll_at = utcnow()
    await session.flush()
    return connection


async def retry(session: AsyncSession, principal: Principal, connection_id: str, order_key: str,
                ip: str | None = None) -> ConnectorOrder:
    connection = await get(session, principal, connection_id)
    row = await OrderRepository(session).get(connection_id, order_key)
    if row is None:
        raise NotFound("no such order on this connection", code="connector_order_not_found")
    if row.status not in ("parked", "pending"):
        raise Conflict(f"only a parked or pending order is retried; this one is {row.status}",
                       code="order_not_retryable")
    outbox.enqueue(session, connection.tenant_id, RETRY_TOPIC, {"connection_id": connection.id,
                                                                 "order_id": row.order_id})
    await audit.record(session, connection.tenant_id, principal.actor, "connector_order.retried",
                       f"{connection_id}:{order_key}", {"reason": row.reason}, ip)
    return row
