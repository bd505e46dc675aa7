"""The quota gate runs where the group is sealed: a seal routed to the tenant's owner process is
refused there, and the refusal comes back to the process that took the request as itself."""
from __future__ import annotations

import pytest

from stalela.billing.quotas import QuotaExceeded
from tests.billing.support import plan_id
from tests.fiscal.invoices.test_owners import _request, pair, peers_dir, shop  # noqa: F401  (fixtures)

OPS = "/v1/ops/billing"


async def test_routed_seal_over_the_cap(client, operator_headers, pair, shop):  # noqa: F811
    tenant, _, outlets, principal = shop
    pid = plan_id("routed")
    await client.post(f"{OPS}/plans", json={"id": pid, "name": "One", "quotas": {"invoices_sealed": 1}},
                      headers=operator_headers)
    assert (await client.put(f"{OPS}/tenants/{tenant['id']}", json={"plan_id": pid},
                             headers=operator_headers)).status_code == 200
    owner = pair.owner_of(tenant["id"])
    other = "b" if owner == "a" else "a"
    sealed = await pair.sealers[other].seal(_request(principal, outlets[0]["id"]))
    assert sealed.body["counter"] == 1
    with pytest.raises(QuotaExceeded) as refused:
        await pair.sealers[other].seal(_request(principal, outlets[0]["id"]))
    assert refused.value.status == 429 and refused.value.extra["cap"] == "1" and refused.value.headers["Retry-After"]
    outcomes = await pair.sealers[other].seal_batch(tenant["id"], [_request(principal, outlets[1]["id"])])
    assert isinstance(outcomes[0], QuotaExceeded)
    assert pair.served[owner] == 3  # all three were sealed (or refused) by the owner
