"""A credit note issued at another outlet than its original's (``credit_notes_across_outlets``): a viewer
restricted to the original's outlet sees the original, never the other outlet's note."""
from __future__ import annotations

import pytest

from tests.conftest import make_settings
from tests.dashboard.test_merchant import seal
from tests.support.invoices import sample_invoice


@pytest.fixture
def settings(database_url, tmp_path):
    return make_settings(database_url, tmp_path, argon2_time_cost=1, argon2_memory_kib=1024, argon2_parallelism=1,
                         rate_limit_burst=10_000, credit_notes_across_outlets=True)


async def test_a_restricted_viewer_sees_only_its_outlets_credit_notes(cashier, owner, client, org):
    original = await seal(client, org)
    other = (await client.post("/v1/outlets", json={"code": "LUB1", "name": "Lubumbashi"}, headers=org["key"])).json()
    body = sample_invoice(other["id"], type="FA", nature="COR", original=original["fiscal_number"],
                          lines=[{"description": "Retour", "item_type": "BIE", "tax_group": "B", "quantity": "1",
                                  "unit_price": "45000.00"}])
    credit = await client.post("/v1/invoices", json=body, headers=org["key"])
    assert credit.status_code == 201, credit.text
    seen_by_owner = (await owner.get(f"/app/invoices/{original['id']}")).text
    assert credit.json()["fiscal_number"] in seen_by_owner
    seen_by_cashier = await cashier.get(f"/app/invoices/{original['id']}")
    assert seen_by_cashier.status_code == 200
    assert credit.json()["fiscal_number"] not in seen_by_cashier.text
