"""Walking every route: one of each object of a tenant, tenants of either tier, and what each database holds.

Shared by the cross-tenant walk (tests/test_cross_tenant.py) and the walk of a dedicated tenant's own routes
(tests/controlplane/test_walk.py)."""
from __future__ import annotations

from sqlalchemy import bindparam, inspect, text

from stalela.billing import anomaly_tasks
from stalela.billing.bill_models import Bill
from stalela.controlplane import provisioning
from stalela.db.base import UTCDateTime, utcnow
from stalela.db.routing import CONTROL_TABLES
from stalela.kit.clock import rfc3339
from stalela.kit.ids import new_id
from stalela.tenancy.context import bind_tenant
from tests.offline.batch_support import Device
from tests.offline.support import issue_credential, register_device
from tests.billing.anomaly_support import DAY, spike_series, write_usage
from tests.controlplane.conftest import provisioned
from tests.support.invoices import sample_invoice

TIERS = ("shared", "dedicated")
# Two tenants in two tiers, either way round (parameters of the tests that pair them).
ACROSS = [("dedicated", "shared"), ("shared", "dedicated")]

# Bodies the victim itself could send: so that an attacker's 404 on these routes comes from the
# ownership check, not from the schema refusing a wrong body first (the cross-tenant walk sends them as the
# victim too, to check that).
BODIES = {
    ("patch", "/v1/outlets/{outlet_id}"): {"name": "Renamed"},
    ("put", "/v1/outlets/{outlet_id}/authority-device"): {"nim": "NIM9", "base_url": "https://dgi.example.cd",
                                                          "token": "tok"},
    ("patch", "/v1/users/{user_id}"): {"name": "Renamed"},
    ("post", "/v1/outlets/{outlet_id}/z-reports"): {},
    ("patch", "/v1/webhook-endpoints/{endpoint_id}"): {"description": "renamed"},
    ("post", "/v1/webhook-endpoints/{endpoint_id}/rotate-secret"): {},
    ("post", "/v1/webhook-endpoints/{endpoint_id}/recover"): {"since": "2026-01-01T00:00:00Z"},
    ("patch", "/v1/operators/{operator_id}"): {"name": "Renamed"},
    ("post", "/v1/devices/{device_id}/credentials"): {"block_size": 1},
    ("post", "/v1/offline/blocks/{block_id}/return"): {
        "payload": {"kind": "block_return", "first": 2, "last": 2, "prev_hash": "0" * 64, "at": "2026-12-07T00:00:00Z"},
        "hash": "0" * 64, "signature": "AA", "key_id": "k", "algorithm": "ES256"},
    ("patch", "/v1/invoice-drafts/{draft_id}"): {"invoice": sample_invoice("out_elsewhere")},
    ("patch", "/v1/connections/{connection_id}"): {"status": "paused"},
}


async def make_tenant(client, app, operator_headers, tier: str, name: str, tax_id: str) -> tuple[dict, dict]:
    """A tenant of ``tier`` through the API (a dedicated one provisioned as the worker would), with its key."""
    if tier == "dedicated":
        tenant, headers = await provisioned(client, app, operator_headers, name=name, tax_id=tax_id)
        return tenant, headers
    r = await client.post("/v1/tenants", json={"name": name, "tax_id": tax_id, "jurisdiction": "CD"},
                          headers=operator_headers)
    assert r.status_code == 201, r.text
    return r.json()["tenant"], {"Authorization": f"Bearer {r.json()['api_key']}"}


async def database_of(client, app, operator_headers, tenant_id: str):
    """The Database holding the tenant's data plane: its own, or the control plane's for a shared one."""
    r = await client.get(f"/v1/tenants/{tenant_id}", headers=operator_headers)
    assert r.status_code == 200, r.text
    placement = r.json().get("database")
    return app.state.db.fleet.database(placement) if placement else app.state.db


def _tenant_tables(conn) -> list[str]:  # noqa: ANN001
    found = inspect(conn)
    return sorted(t for t in found.get_table_names()
                  if t not in CONTROL_TABLES and any(c["name"] == "tenant_id" for c in found.get_columns(t)))


async def _platform(conn) -> None:  # noqa: ANN001
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT set_config('stalela.platform', 'on', false)"))


async def outbox_outcomes(db, tenant_id: str) -> list[tuple[str, str, bool]]:
    """How the tenant's outbox events ended in ``db``: (topic, status, failed once), sorted."""
    async with db.engine.connect() as conn:
        await _platform(conn)
        rows = await conn.execute(text("SELECT topic, status, last_error IS NOT NULL FROM outbox WHERE tenant_id = :t "
                                       "AND topic <> :job"), {"t": tenant_id, "job": provisioning.TOPIC})
        return sorted(set(tuple(r) for r in rows))


async def outbox_busy(db, tenant_id: str) -> int:
    """The tenant's pending events that are due now or leased (being handled by some dispatcher): work that a
    walk's final picture must wait for. An event retried later (a webhook's backoff) is not busy."""
    async with db.engine.connect() as conn:
        await _platform(conn)
        now = utcnow()
        # Bound as the column's type, so SQLite compares the stored text form with the same form.
        busy = text("SELECT count(*) FROM outbox WHERE tenant_id = :t AND topic <> :job AND status = 'pending' "
                    "AND (available_at <= :now OR lease_until > :now)").bindparams(bindparam("now", type_=UTCDateTime()))
        row = await conn.execute(busy, {"t": tenant_id, "job": provisioning.TOPIC, "now": now})
        return int(row.scalar_one())


async def data_rows(db, tenant_id: str) -> dict[str, int]:
    """Rows of ``tenant_id`` in every data-plane table of ``db``, read past row-level security (the
    operator's view): what the tenant left in that database."""
    async with db.engine.connect() as conn:
        await _platform(conn)
        counts = {}
        for table in await conn.run_sync(_tenant_tables):
            # The provisioning job's event is the control plane's own (the tenant's database does not exist
            # when it is written): the one outbox row of a dedicated tenant the shared database may hold.
            mine = " AND topic <> :job" if table == "outbox" else ""
            n = (await conn.execute(text(f'SELECT count(*) FROM "{table}" WHERE tenant_id = :t{mine}'),
                                    {"t": tenant_id, "job": provisioning.TOPIC})).scalar()
            if n:
                counts[table] = n
        return counts


def _ok(r) -> dict:  # noqa: ANN001
    assert r.status_code < 300, (r.request.method, r.request.url.path, r.status_code, r.text)
    return r.json()


async def victim_objects(app, client, headers) -> dict[str, str]:
    """Create one of everything for the victim tenant; returns sample ids by path-parameter name."""
    outlet = _ok(await client.post("/v1/outlets", json={"code": "V1", "name": "Victim"}, headers=headers))
    key = _ok(await client.post("/v1/api-keys", json={"name": "victim"}, headers=headers))
    invoice = _ok(await client.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers=headers))
    export = _ok(await client.post("/v1/exports/audit", json={}, headers=headers))
    user = _ok(await client.post("/v1/users", json={"email": "victim@example.cd", "name": "Victim", "role": "cashier",
                                                  "password": "a victim's long pass"}, headers=headers))
    z_report = _ok(await client.post(f"/v1/outlets/{outlet['id']}/z-reports", headers=headers))
    hook = _ok(await client.post("/v1/webhook-endpoints", json={"url": "https://hooks.example.com/v"}, headers=headers))
    hook_msg = _ok(await client.post(f"/v1/webhook-endpoints/{hook['id']}/test", headers=headers))
    erasure = _ok(await client.post("/v1/privacy/erasure-requests", json={"subject": {"email": "nobody@victim.cd"}},
                                 headers=headers))
    hold = _ok(await client.post("/v1/privacy/retention/holds", json={"reason": "victim's audit"}, headers=headers))
    privacy_export = _ok(await client.post("/v1/privacy/exports", json={"scope": "tenant"}, headers=headers))
    usage = _ok(await client.post("/v1/usage/events", json={"event_id": "victim-usage-evt-1", "resource": "api_calls",
                                                          "quantity": "1", "occurred_at": rfc3339(utcnow())},
                               headers=headers))
    anomaly_id = await victim_anomaly(app, outlet["tenant_id"])
    draft = _ok(await client.post("/v1/invoice-drafts", json={"text": "Facture pour Kin Marché SARL NIF A1234567Z: 3 sacs "
                                                                     "de ciment à 25000 FC"}, headers=headers))
    connection = _ok(await client.post("/v1/connections", json={
        "platform": "shopify", "shop": "victim-store.myshopify.com", "outlet_id": outlet["id"],
        "credentials": {"access_token": "shpat_victim", "webhook_secret": "victim-secret"}}, headers=headers))
    order_key = await victim_order(app, outlet["tenant_id"], connection["id"])
    device, device_key = await register_device(client, headers, outlet["tenant_id"], outlet["id"])
    credential = await issue_credential(client, headers, device["id"], block_size=2)
    # A returned batch, then a fork at its number (another invoice the device key signed): a batch and a proof.
    sealer, clone = Device(device_key, credential["credential"]), Device(device_key, credential["credential"])
    batch = _ok(await client.post("/v1/offline/batches", json=sealer.batch([sealer.seal()]), headers=headers))
    fork = await client.post("/v1/offline/batches", json=clone.batch([clone.seal()]), headers=headers)
    assert fork.status_code == 409, fork.text
    return {"device_id": device["id"], "jti": credential["jti"], "block_id": credential["block_id"],
            "batch_id": batch["id"], "proof_id": fork.json()["fork_proof"]["id"], "anomaly_id": anomaly_id, "request_id": erasure["id"], "outlet_id": outlet["id"], "key_id": key["id"], "invoice_id": invoice["id"],
            "export_id": export["id"], "user_id": user["id"], "z_report_id": z_report["id"], "endpoint_id": hook["id"],
            "msg_id": hook_msg["id"], "hold_id": hold["id"], "privacy_export_id": privacy_export["id"],
            "event_id": usage["event_id"], "draft_id": draft["id"], "connection_id": connection["id"],
            "order_key": order_key}


async def victim_order(app, tenant_id: str, connection_id: str) -> str:
    """A parked order of the victim's connection (orders come from a platform; the row is what the walk needs)."""
    from stalela.connectors.models import ConnectorOrder

    async with app.state.db.transaction() as session:
        await bind_tenant(session, tenant_id)
        session.add(ConnectorOrder(tenant_id=tenant_id, connection_id=connection_id, order_key="4500001",
                                   order_id="4500001", status="parked", version="2026-12-01T00:00:00Z",
                                   reason="totals_mismatch", difference="0.05", write_back="none",
                                   created_at=utcnow(), updated_at=utcnow()))
    return "4500001"


async def victim_anomaly(app, tenant_id: str) -> str:
    """An anomaly stored through the detection service (no route creates one)."""
    await write_usage(app.state.db, tenant_id, "api_calls", spike_series())
    [found] = await anomaly_tasks.detect_all(app.state.db, app.state.settings, DAY, tenant_id=tenant_id)
    return found["id"]


async def victim_bill(app, tenant_id: str) -> str:
    """A sealed-looking bill of the victim (the cycle needs usage and an issuer; the row is what matters)."""
    async with app.state.db.transaction() as session:
        await bind_tenant(session, tenant_id)
        bill = Bill(tenant_id=tenant_id, id=new_id("bill"), period="2020-01", status="draft", currency="CDF",
                    total_cents=100, lines="[]", finalize_after=utcnow())
        session.add(bill)
    return bill.id


async def victim_move(app, tenant_id: str) -> str:
    """A move of the victim (failed: moves need PostgreSQL and a worker; the row is what the walk needs)."""
    from stalela.controlplane.models import TenantMove

    async with app.state.db.transaction() as session:
        await bind_tenant(session, tenant_id)
        move = TenantMove(tenant_id=tenant_id, id=new_id("mov"), to_tier="dedicated", status="failed", step="failed",
                          created_at=utcnow(), updated_at=utcnow())
        session.add(move)
    return move.id
