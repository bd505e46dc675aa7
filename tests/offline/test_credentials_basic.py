"""A device registers with a proof of its key; its credential is a JWS the pure core verifies."""
from __future__ import annotations

from datetime import datetime, timezone

from stalela.fiscal.core import offline as core
from tests.offline.support import issue_credential, register_device
from tests.support.invoices import sample_invoice


async def test_credential_carves_a_block_between_online_numbers(client, new_tenant):
    tenant, headers = await new_tenant()
    outlet = (await client.post("/v1/outlets", json={"code": "SHOP", "name": "Shop"}, headers=headers)).json()
    first = (await client.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers=headers)).json()
    device, _ = await register_device(client, headers, tenant["id"], outlet["id"])
    issued = await issue_credential(client, headers, device["id"], block_size=10)
    after = (await client.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers=headers)).json()
    jwks = {k["kid"]: k for k in (await client.get("/.well-known/jwks.json")).json()["keys"]}
    claims = core.verify_credential(issued["credential"], jwks.get, datetime.now(timezone.utc))
    assert claims["block"]["first"] == first["counter"] + 1 == 2
    assert claims["block"]["last"] == 11 and after["counter"] == 12
    assert claims["cnf"]["jwk"]["kid"] == device["public_key"]["kid"]
    # The next online invoice chains to the block's sealed record, which chains to the previous invoice.
    assert after["seal"]["payload"]["prev_hash"] == claims["block"]["anchor"]
