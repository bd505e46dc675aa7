"""``rebuild_figures`` gives a merged offline invoice the day its merge gave it: its counter is older than the
online invoices sealed while its device was away, so the Zs' counters would put it in a day already closed."""
from __future__ import annotations

import json

from sqlalchemy import select

from stalela.fiscal.invoices.models import DayFigures
from stalela.fiscal.reports import service
from stalela.tenancy.context import bind_tenant
from tests.offline.batch_support import new_device, offline_outlet
from tests.support.invoices import sample_invoice


async def _days(db, tenant_id: str, outlet_id: str) -> dict:  # noqa: ANN001
    async with db.transaction(readonly=True) as s:
        await bind_tenant(s, tenant_id)
        rows = (await s.execute(select(DayFigures).where(DayFigures.outlet_id == outlet_id))).scalars()
        return {r.business_day: (json.loads(r.figures), r.z_report_id) for r in rows}


async def test_rebuild_keeps_the_merge_day_of_offline_invoices(client, db, new_tenant):
    tenant, headers, outlet = await offline_outlet(client, new_tenant)
    assert (await client.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers=headers)).status_code == 201
    device = await new_device(client, headers, tenant["id"], outlet["id"])  # the block: numbers 2..11
    online = (await client.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers=headers)).json()
    assert online["counter"] == 12
    z = await client.post(f"/v1/outlets/{outlet['id']}/z-reports", json={}, headers=headers)
    assert z.status_code == 201, z.text
    # Sold offline today, merged after today's Z: the next day's (its counter, 2, is inside the Z's range).
    r = await client.post("/v1/offline/batches", json=device.batch([device.seal()]), headers=headers)
    assert r.json()["merged"] == 1, r.text
    invoice = (await client.get(f"/v1/invoices/{r.json()['data'][0]['invoice_id']}", headers=headers)).json()
    x = (await client.get(f"/v1/outlets/{outlet['id']}/x-report", headers=headers)).json()
    assert invoice["offline"]["business_day"] == x["business_day"] > z.json()["business_day"]
    assert x["offline_count"] == 1

    before = await _days(db, tenant["id"], outlet["id"])

    async def rebuild(apply: bool):  # noqa: ANN202
        async with db.transaction() as s:
            await bind_tenant(s, tenant["id"])
            return await service.rebuild_figures(s, outlet["id"], apply=apply)

    checked = await rebuild(False)
    assert (checked.invoices, checked.days, checked.repaired, checked.z_mismatches) == (3, 2, [], [])
    assert (await rebuild(True)).repaired == []
    assert await _days(db, tenant["id"], outlet["id"]) == before
