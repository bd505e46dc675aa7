"""The anomaly API on SQLite and PostgreSQL: the tenant lists, reads, acknowledges and dismisses its
anomalies (status transitions, 409s, audit log); the operator lists every tenant's."""
from __future__ import annotations

import pytest

from stalela.billing import anomaly_tasks
from tests.auth.test_users import bearer, login, make_user
from tests.billing.anomaly_support import DAY, spike_series, write_usage


@pytest.fixture
def settings(database_url, tmp_path):
    from tests.conftest import make_settings

    return make_settings(database_url, tmp_path, argon2_time_cost=1, argon2_memory_kib=1024, argon2_parallelism=1)


RESOURCES = ("api_calls", "invoices_sealed", "network_bytes")


async def _anomalies(app, tenant_id: str, count: int = 3) -> list[dict]:
    """A spike on DAY in ``count`` resources: that many anomalies, in creation order."""
    for resource in RESOURCES[:count]:
        await write_usage(app.state.db, tenant_id, resource, spike_series(spike=5000))
    found = await anomaly_tasks.detect_all(app.state.db, app.state.settings, DAY, tenant_id=tenant_id)
    assert [a["resource"] for a in found] == list(RESOURCES[:count])
    return found


async def test_list_get_acknowledge_dismiss(app, client, new_tenant):
    tenant, root = await new_tenant("Anomalous SARL", "N0000001")
    first, second, third = await _anomalies(app, tenant["id"])
    await make_user(client, root, "acc@anomalous.cd", "accountant")
    accountant = bearer((await login(client, "acc@anomalous.cd")).json())

    r = await client.get("/v1/billing/anomalies", headers=accountant)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [a["id"] for a in body["data"]] == [third["id"], second["id"], first["id"]] and not body["has_more"]
    assert body["data"][0]["day"] == DAY.isoformat() and body["data"][0]["status"] == "open"
    page = (await client.get("/v1/billing/anomalies", params={"limit": 2}, headers=root)).json()
    assert len(page["data"]) == 2 and page["has_more"]
    rest = (await client.get("/v1/billing/anomalies", params={"limit": 2, "starting_after": page["data"][-1]["id"]},
                             headers=root)).json()
    assert [a["id"] for a in rest["data"]] == [first["id"]] and not rest["has_more"]

    r = await client.get(f"/v1/billing/anomalies/{second['id']}", headers=root)
    # invoices_sealed on the default plan: ~2,900 sealed before in November, in the 0.01 tier (to 10,000):
    # the 4,900 above the baseline cost 49.00.
    assert r.status_code == 200 and r.json()["observed"] == "5000" and r.json()["impact_eur"] == "49.00"

    r = await client.post(f"/v1/billing/anomalies/{first['id']}/acknowledge", headers=accountant)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "acknowledged" and r.json()["status_by"].startswith("user:") and r.json()["status_at"]
    r = await client.post(f"/v1/billing/anomalies/{first['id']}/acknowledge", headers=accountant)
    assert r.status_code == 409 and r.json()["code"] == "anomaly_status_conflict" and r.json()["status"] == "acknowledged"
    r = await client.post(f"/v1/billing/anomalies/{first['id']}/dismiss", headers=root)
    assert r.status_code == 200 and r.json()["status"] == "dismissed"
    r = await client.post(f"/v1/billing/anomalies/{second['id']}/dismiss", headers=root)
    assert r.status_code == 200 and r.json()["status"] == "dismissed"
    for action in ("acknowledge", "dismiss"):
        r = await client.post(f"/v1/billing/anomalies/{second['id']}/{action}", headers=root)
        assert r.status_code == 409 and r.json()["code"] == "anomaly_status_conflict"

    def ids(status):
        return client.get("/v1/billing/anomalies", params={"status": status}, headers=root)

    assert [a["id"] for a in (await ids("open")).json()["data"]] == [third["id"]]
    assert [a["id"] for a in (await ids("dismissed")).json()["data"]] == [second["id"], first["id"]]
    assert (await ids("acknowledged")).json()["data"] == []
    assert (await ids("closed")).status_code == 422

    log = (await client.get("/v1/audit-log", headers=root)).json()["data"]
    actions = [(e["action"], e["target"]) for e in log if e["action"].startswith("billing.anomaly_")]
    assert actions == [("billing.anomaly_dismissed", second["id"]), ("billing.anomaly_dismissed", first["id"]),
                       ("billing.anomaly_acknowledged", first["id"])]


async def test_unknown_anomaly_and_roles(app, client, new_tenant):
    tenant, root = await new_tenant("Roles SARL", "O0000001")
    [found] = await _anomalies(app, tenant["id"], count=1)
    assert (await client.get("/v1/billing/anomalies/anom_nothing", headers=root)).json()["code"] == "anomaly_not_found"
    r = await client.post("/v1/billing/anomalies/anom_nothing/dismiss", headers=root)
    assert r.status_code == 404 and r.json()["code"] == "anomaly_not_found"
    await make_user(client, root, "audit@roles.cd", "auditor")
    auditor = bearer((await login(client, "audit@roles.cd")).json())
    assert (await client.get(f"/v1/billing/anomalies/{found['id']}", headers=auditor)).status_code == 200
    r = await client.post(f"/v1/billing/anomalies/{found['id']}/acknowledge", headers=auditor)
    assert r.status_code == 403 and r.json()["code"] == "insufficient_permissions"


async def test_the_operator_sees_every_tenants_anomalies(app, client, new_tenant, operator_headers):
    one, one_headers = await new_tenant("One SARL", "P0000001")
    two, _ = await new_tenant("Two SARL", "P0000002")
    [a] = await _anomalies(app, one["id"], count=1)
    [b] = await _anomalies(app, two["id"], count=1)
    await client.post(f"/v1/billing/anomalies/{a['id']}/acknowledge", headers=one_headers)
    r = await client.get("/v1/ops/billing/anomalies", params={"limit": 100}, headers=operator_headers)
    assert r.status_code == 200, r.text
    seen = {x["id"]: x for x in r.json()["data"]}
    assert seen[a["id"]]["tenant_id"] == one["id"] and seen[b["id"]]["tenant_id"] == two["id"]
    opened = (await client.get("/v1/ops/billing/anomalies", params={"status": "open", "limit": 100},
                               headers=operator_headers)).json()["data"]
    assert b["id"] in {x["id"] for x in opened} and a["id"] not in {x["id"] for x in opened}
    assert {x["status"] for x in opened} == {"open"}
    assert (await client.get("/v1/ops/billing/anomalies", headers=one_headers)).status_code in (401, 403)
    # The tenant sees its own only.
    mine = (await client.get("/v1/billing/anomalies", headers=one_headers)).json()["data"]
    assert [x["id"] for x in mine] == [a["id"]]
