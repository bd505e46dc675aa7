"""From an order to what it should become, exactly once: an invoice, a parked order, a credit note, nothing.

One order is decided under its row's lock (``OrderRepository.locked``), so a webhook, its duplicates, a
poll and a person's retry of the same order take turns. The invoice is sealed in that same transaction,
under the Idempotency-Key ``stalela:connector:<connection>:<order key>``: the row's update and the seal
commit together, and even if they did not, the key would return the first invoice instead of a second.

Versions (the platform's ``updated_at``, RFC 3339 UTC) order what we learn about an order. A payload older
than what was already decided (Shopify retries carry the original body for hours) makes us read the
order again from the platform; whatever is still older than the decided version is dropped.

This module is a boundary (like a worker): it owns its transactions, and calls the platform outside them.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from stalela.auth.principal import Principal
from stalela.config import Settings
from stalela.connectors import mapping, service
from stalela.connectors.clients.base import PlatformClient
from stalela.connectors.models import Connection, ConnectorOrder
from stalela.connectors.repository import OrderRepository
from stalela.db.base import utcnow
from stalela.db.session import Database
from stalela.errors import StalelaError
from stalela.fiscal.invoices import service as invoices
from stalela.fiscal.invoices.schemas import RESERVED_KEY_PREFIX, InvoiceCreate
from stalela.observability.logging import get_logger
from stalela.outbox import service as outbox
from stalela.tenancy.context import bind_tenant
from stalela.tenancy.repository import TenantRepository

log = get_logger("stalela.connectors")
WRITE_BACK_TOPIC = "connector.write_back"


@dataclass(frozen=True)
class Outcome:
    order_key: str
    status: str  # the order's status after this decision
    changed: bool  # False: nothing new (a duplicate, a stale payload, an order already decided)
    note: str = ""


def seal_key(connection_id: str, order_key: str, credit: bool = False) -> str:
    return f"{RESERVED_KEY_PREFIX}connector:{connection_id}:{order_key}{':credit' if credit else ''}"


def principal_for(connection: Connection, jurisdiction: str) -> Principal:
    """Who seals a connection's invoices: the tenant, restricted to the connection's outlet."""
    return Principal(kind="api_key", tenant_id=connection.tenant_id, api_key_id=connection.id,
                     outlet_id=connection.outlet_id, tenant_status="active", jurisdiction=jurisdiction)


async def stored_version(db: Database, connection: Connection, order_key: str) -> str | None:
    async with db.transaction(readonly=True) as session:
        await bind_tenant(session, connection.tenant_id)
        row = await OrderRepository(session).get(connection.id, order_key)
        return row.version if row is not None else None


async def process(db: Database, settings: Settings, connection: Connection, client: PlatformClient,
                  order: dict[str, Any], *, from_payload: bool = False) -> Outcome:
    """Decide ``order``. ``from_payload``: it came in a webhook body (maybe stale), not from the API. An order
    at the version already decided is decided again (the same answer, unless the platform stamped two changes
    with one time): ``Outcome.changed`` says whether anything did change."""
    platform = connection.platform
    order = await client.complete(order)
    if platform == "mercadolibre" and str((order.get("seller") or {}).get("id")) != connection.shop:
        raise NotThisSeller(f"order {order.get('id')} was not sold by seller {connection.shop}")
    key, version = mapping.order_key(platform, order), mapping.order_version(platform, order)
    if from_payload:
        known = await stored_version(db, connection, key)
        # A payload no newer than what was decided may be stale (a retry's original body), and platforms stamp
        # changes to the second, so two changes can share a version: what does the platform say now?
        if known is not None and version <= known:
            order = await client.fetch_order(str(order["id"]))
            key, version = mapping.order_key(platform, order), mapping.order_version(platform, order)
    state = mapping.order_state(platform, order)
    details = await client.buyer_details(order) if state == "paid" else None
    try:
        return await _decide(db, settings, connection, order, key, version, state, details)
    except _Rejected as rejected:  # the seal was refused: park it, in a transaction of its own
        return await _park(db, connection, key, str(order["id"]), version, rejected.reason, rejected.detail, order)


class TenantNotWritable(Exception):
    def __init__(self, status: str) -> None:
        super().__init__(f"the tenant is {status}: its orders wait until it is active again")


class NotThisSeller(Exception):
    """A Mercado Libre order of which the connection's seller is not the seller (its own purchase, which the
    seller's token can read too): never a sale of this store."""


class _Rejected(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


async def _decide(db: Database, settings: Settings, connection: Connection, order: dict[str, Any], key: str,
                  version: str, state: str, details: dict[str, Any] | None) -> Outcome:
    async with db.transaction() as session:
        await bind_tenant(session, connection.tenant_id)
        now = utcnow()
        row = await OrderRepository(session).locked(connection.id, key, str(order["id"]), version, now)
        before = _state(row)
        outcome = await _apply(session, settings, connection, row, order, key, version, state, details)
        changed = _state(row) != before
        if changed:  # the list shows the newest change first: a repeat is no change
            row.updated_at = now
        return replace(outcome, changed=changed)


def _state(row: ConnectorOrder) -> tuple:
    return row.status, row.reason, row.invoice_id, row.credit_note_id, row.difference


async def _apply(session: Any, settings: Settings, connection: Connection, row: ConnectorOrder,
                 order: dict[str, Any], key: str, version: str, state: str,
                 details: dict[str, Any] | None) -> Outcome:
    if row.status == "dismissed":
        return Outcome(key, row.status, False, "dismissed by a person")
    if row.version and version < row.version:
        return Outcome(key, row.status, False, "older than what was decided")
    tenant = await TenantRepository(session).get(connection.tenant_id)
    if tenant.status != "active":
        # A suspended or closing tenant writes nothing (as its API keys cannot): the event waits and is tried
        # again later, never parked or dropped (tasks.py turns this into a retry without counting a failure).
        raise TenantNotWritable(tenant.status)
    row.version = version
    if state == "paid":
        if row.invoice_id:
            return Outcome(key, row.status, False, "already invoiced")
        return await _invoice(session, settings, connection, row, order, details, tenant.jurisdiction)
    if state in ("refunded", "cancelled"):
        if row.invoice_id and not row.credit_note_id:
            return await _credit(session, settings, connection, row, order, tenant.jurisdiction)
        if not row.invoice_id:
            _set(row, "skipped", state, f"the order was {state} before any invoice")
        return Outcome(key, row.status, True)
    if state == "partially_refunded":
        # A partial refund needs a person's credit note (which lines, which amounts): we do not guess.
        _set(row, "parked", "partial_refund", "partly refunded: issue the credit note by hand, then dismiss")
        return Outcome(key, row.status, True)
    _set(row, "pending" if not row.invoice_id else row.status, None, None)
    return Outcome(key, row.status, True, "not paid yet")


def _set(row: ConnectorOrder, status: str, reason: str | None, detail: str | None) -> None:
    row.status, row.reason, row.detail = status, reason, detail


async def _invoice(session: Any, settings: Settings, connection: Connection, row: ConnectorOrder,
                   order: dict[str, Any], details: dict[str, Any] | None, jurisdiction: str) -> Outcome:
    try:
        result = mapping.map_order(connection.platform, order, jurisdiction=jurisdiction,
                                   outlet_id=connection.outlet_id, options=service.options_of(connection),
                                   billing_info=details)
    except (ValueError, TypeError) as exc:  # an unreadable order or a bad option: a person looks at it
        result = mapping.Parked("invalid_order", str(exc)[:500])
    row.platform_total, row.currency = result_total(result), currency_of(connection.platform, order)
    if isinstance(result, mapping.Parked):
        _set(row, "parked", result.reason, result.detail)
        row.difference = result.difference
        return Outcome(row.order_key, "parked", True, result.reason)
    if isinstance(result, mapping.Skipped):
        _set(row, "skipped", result.reason, result.detail)
        return Outcome(row.order_key, "skipped", True, result.reason)
    sealed = await _seal(session, settings, connection, jurisdiction, result.body, seal_key(connection.id, row.order_key))
    row.invoice_id, row.fiscal_number = sealed["id"], sealed.get("fiscal_number")
    _set(row, "invoiced", None, None)
    row.difference, row.write_back = result.difference, "pending"
    outbox.enqueue(session, connection.tenant_id, WRITE_BACK_TOPIC,
                   {"connection_id": connection.id, "order_key": row.order_key})
    return Outcome(row.order_key, "invoiced", True)


def result_total(result: Any) -> str | None:
    return getattr(result, "platform_total", None)


def currency_of(platform: str, order: dict[str, Any]) -> str | None:
    value = order.get("currency_id" if platform == "mercadolibre" else "currency")
    return str(value)[:3] if value else None


async def _credit(session: Any, settings: Settings, connection: Connection, row: ConnectorOrder,
                  order: dict[str, Any], jurisdiction: str) -> Outcome:
    principal = principal_for(connection, jurisdiction)
    original = (await invoices.render_many(session, settings,
                                           [await invoices.get_invoice(session, principal, row.invoice_id)]))[0]
    try:
        result = mapping.credit_note_for(original, connection.platform, order, jurisdiction=jurisdiction,
                                         options=service.options_of(connection))
    except (ValueError, TypeError) as exc:
        result = mapping.Parked("invalid_order", str(exc)[:500])
    if isinstance(result, mapping.Parked):  # the invoice stays; a person issues the credit note
        _set(row, "parked", result.reason, result.detail)
        return Outcome(row.order_key, "parked", True, result.reason)
    if isinstance(result, mapping.Skipped):
        return Outcome(row.order_key, row.status, False, result.reason)
    sealed = await _seal(session, settings, connection, jurisdiction, result.body,
                         seal_key(connection.id, row.order_key, credit=True))
    row.credit_note_id = sealed["id"]
    _set(row, "credited", "refunded", f"refunded after invoice {row.fiscal_number}: credit note "
                                      f"{sealed.get('fiscal_number')}")
    return Outcome(row.order_key, "credited", True)


async def _seal(session: Any, settings: Settings, connection: Connection, jurisdiction: str, body: dict[str, Any],
                key: str) -> dict[str, Any]:
    try:
        request = InvoiceCreate.model_validate(body)
    except PydanticValidationError as exc:
        raise _Rejected("invalid_invoice", str(exc.errors()[0].get("msg", "invalid"))[:500]) from None
    try:
        result = await invoices.seal_invoice(session, settings, principal_for(connection, jurisdiction), request, key)
    except StalelaError as exc:
        if exc.status >= 500:
            raise  # an outage: retried by the outbox, never parked
        raise _Rejected(f"rejected:{exc.code}"[:64], (exc.detail or exc.title or "")[:500]) from None
    return result.body


async def _park(db: Database, connection: Connection, key: str, order_id: str, version: str, reason: str,
                detail: str, order: dict[str, Any]) -> Outcome:
    async with db.transaction() as session:
        await bind_tenant(session, connection.tenant_id)
        row = await OrderRepository(session).locked(connection.id, key, order_id, version, utcnow())
        if row.status == "dismissed" or (row.version and version < row.version) or row.credit_note_id:
            return Outcome(key, row.status, False)
        if row.invoice_id:  # the credit note was refused: the invoice stays, a person issues the credit note
            detail = f"the credit note of invoice {row.fiscal_number} was refused: {detail}"
        row.version, row.updated_at = version, utcnow()
        _set(row, "parked", reason, detail)
        return Outcome(key, "parked", True, reason)
