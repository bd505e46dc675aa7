"""Platform billing across tiers: the issuer (a tenant that seals the platform's bills) and the billed tenant
may each be shared or dedicated; a bill (control plane) shows and prints its invoice from the issuer's database."""
from __future__ import annotations

import pytest

from stalela.billing import bill_tasks
from tests.billing.bill_support import OPS, at, cdf_plan, periods, use
from tests.conftest import make_settings
from tests.controlplane.conftest import dedicated_template
from tests.support.walk import ACROSS, make_tenant


@pytest.fixture
def tier_settings(database_url, tmp_path):
    # No API-call metering (as in the bill tests): its flush would record calls at the usage clock's moment.
    return make_settings(database_url, tmp_path, usage_metering=False,
                         dedicated_database_url_template=dedicated_template(database_url, tmp_path))


@pytest.mark.parametrize("issuer_tier,billed_tier", [*ACROSS, ("dedicated", "dedicated")])
async def test_a_bill_is_sealed_and_printed_across_tiers(tier_app, tier_client, operator_headers, issuer_tier,
                                                         billed_tier):
    app, client = tier_app, tier_client
    issuer, issuer_headers = await make_tenant(client, app, operator_headers, issuer_tier, "Plateforme SA", "P0000009")
    outlet = issuer.get("outlet") or (await client.post("/v1/outlets", json={"code": "BILL", "name": "Billing"},
                                                        headers=issuer_headers)).json()["id"]
    r = await client.put(f"{OPS}/issuer", json={"tenant_id": issuer["id"], "outlet_id": outlet},
                         headers=operator_headers)
    assert r.status_code == 200, r.text
    tenant, headers = await make_tenant(client, app, operator_headers, billed_tier, "Client SARL", "C0000009")
    await cdf_plan(client, operator_headers, tenant["id"])
    _, previous, _ = periods()
    await use(client, headers, "tier-bill-1", "api_calls", "4000", at(previous, 2))
    await bill_tasks.close_period(app.state.db, app.state.settings, previous, tenant_ids=[tenant["id"]],
                                  finalize_now=True)

    [bill] = (await client.get("/v1/billing/invoices", headers=headers)).json()["data"]
    assert bill["invoice_id"], bill
    body = (await client.get(f"/v1/billing/invoices/{bill['id']}", headers=headers)).json()
    assert body["invoice"]["id"] == bill["invoice_id"] and body["invoice"]["tenant_id"] == issuer["id"]
    r = await client.get(f"/v1/billing/invoices/{bill['id']}/pdf", headers=headers)
    assert r.status_code == 200 and r.content.startswith(b"%PDF"), r.text
    # The issuer sees its own invoice where it lives.
    r = await client.get(f"/v1/invoices/{bill['invoice_id']}", headers=issuer_headers)
    assert r.status_code == 200, r.text
