"""Invoices the device signed at its numbers but that break a rule: refused, each with its own code, with a
sealed offline_refusal record; the block's chain continues through them and the rest merges."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from stalela.fiscal.core.seal import verify_seal
from stalela.fiscal.ledger.models import LedgerEvent
from stalela.fiscal.reports.audit import verify_database
from stalela.tenancy.context import bind_tenant
from tests.offline.batch_support import new_device, offline_outlet
from tests.support.invoices import sample_invoice


def _set(**values):
    def tamper(payload):
        payload.update(values)
    return tamper


async def test_each_rule_refuses_with_its_code_and_the_rest_merges(app, client, new_tenant):
    tenant, headers, outlet = await offline_outlet(client, new_tenant)
    taken = (await client.post("/v1/invoices", json=sample_invoice(outlet["id"], reference="R-1"),
                               headers=headers)).json()
    device = await new_device(client, headers, tenant["id"], outlet["id"], block_size=40,
                              caps={"max_invoice_total": "500000", "invoice_types": ["FV"],
                                    "tax_groups": ["A", "B"]})
    now = datetime.now(timezone.utc)
    shop = outlet["id"]
    good = lambda: device.seal()  # noqa: E731
    cases = {
        "offline_totals_mismatch": lambda: device.seal(tamper=lambda p: (p["totals"].update(total="1.00"),
                                                                         p.update(total="1.00"))),
        "offline_payload_mismatch": lambda: device.seal(tamper=_set(currency="USD")),
        "offline_time_invalid": lambda: device.seal(tamper=_set(issued_at="2026-12-07 10:00:00")),
        "offline_time_outside_credential": lambda: device.seal(
            issued_at=datetime.fromtimestamp(device.claims["nbf"], timezone.utc) - timedelta(minutes=5)),
        "offline_time_outside_block": lambda: device.seal(issued_at=now + timedelta(hours=2)),
        "offline_type_not_allowed": lambda: device.seal(sample_invoice(shop, type="FT")),
        "offline_tax_group_not_allowed": lambda: device.seal(sample_invoice(shop, lines=[
            {"description": "Bière", "item_type": "BIE", "tax_group": "C", "quantity": "1", "unit_price": "1000"}])),
        "offline_cap_exceeded": lambda: device.seal(sample_invoice(shop, lines=[
            {"description": "Groupe électrogène", "item_type": "BIE", "tax_group": "B", "quantity": "1",
             "unit_price": "900000"}])),
        "offline_invoice_id_taken": lambda: device.seal(tamper=_set(invoice_id=taken["id"])),
        "offline_invoice_id_invalid": lambda: device.seal(tamper=_set(invoice_id="not-an-id")),
        "offline_reference_taken": lambda: device.seal(sample_invoice(shop, reference="R-1")),
    }
    items, expected = [good()], ["merged"]
    for code, make in cases.items():
        items += [make(), good()]
        expected += [code, "merged"]
    # The request itself: broken (schema), or breaking an engine rule, while the device signed a good one.
    bad_request = good()
    bad_request["request"] = {"outlet_id": shop, "type": "FV"}
    rule_breaker = good()
    rule_breaker["request"] = sample_invoice(shop, lines=[{"description": "x", "item_type": "BIE", "tax_group": "Z",
                                                           "quantity": "1", "unit_price": "1"}])
    changed_request = good()  # a byte of the request changed: it no longer matches what was signed
    changed_request["request"]["lines"][0]["quantity"] = "3"
    items += [bad_request, rule_breaker, changed_request, good()]
    expected += ["offline_request_invalid", "offline_rule_violation", "offline_payload_mismatch", "merged"]

    r = await client.post("/v1/offline/batches", json=device.batch(items), headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    got = [d["code"] if d["outcome"] == "refused" else d["outcome"] for d in body["data"]]
    assert got == expected, [(d["outcome"], d.get("code"), d.get("detail")) for d in body["data"]]
    assert body["held"] == 0 and body["refused"] == len(cases) + 3
    assert body["block"]["next"] == device.next and body["block"]["head"] == device.head

    # Each refusal is a sealed record in the log, chained where the device's invoice was, verifying with
    # the tenant's key; its receipt names it.
    refused = [d for d in body["data"] if d["outcome"] == "refused"]
    async with app.state.db.transaction(readonly=True) as session:
        await bind_tenant(session, tenant["id"])
        events = {e.id: e for e in (await session.execute(
            select(LedgerEvent).where(LedgerEvent.kind == "offline_refusal"))).scalars()}
    for d in refused:
        event = events[d["event_id"]]
        payload = json.loads(event.payload)
        item = items[d["index"]]
        assert payload["device_hash"] == item["seal"]["hash"] and payload["code"] == d["code"]
        assert payload["prev_hash"] == item["seal"]["payload"]["prev_hash"] and payload["counter"] == d["counter"]
        jwk = (await client.get(f"/v1/keys/{event.key_id}")).json()
        assert verify_seal({"payload": payload, "hash": event.seal_hash, "signature": event.signature,
                            "key_id": event.key_id, "algorithm": "ES256"}, jwk)
    listed = (await client.get("/v1/offline/receipts", params={"outcome": "refused", "limit": 100},
                               headers=headers)).json()["data"]
    assert sorted(x["code"] for x in listed) == sorted(d["code"] for d in refused)
    # stalela verify places every refusal and merged invoice in the block's chain.
    report = await verify_database(app.state.db, tenant["id"])
    assert report.valid, [f.describe() for f in report.failures]


async def test_buyer_commitments_are_checked_with_the_salt(client, new_tenant):
    tenant, headers, outlet = await offline_outlet(client, new_tenant)
    device = await new_device(client, headers, tenant["id"], outlet["id"])
    buyer = {"type": "PP", "name": "Jean Kabila", "tax_id": "P123", "email": "jean@example.cd"}
    right = device.seal(sample_invoice(outlet["id"], buyer=buyer))
    wrong = device.seal(sample_invoice(outlet["id"], buyer=buyer))
    wrong["buyer_salt"] = right["buyer_salt"]
    r = (await client.post("/v1/offline/batches", json=device.batch([right, wrong]), headers=headers)).json()
    assert [d["outcome"] for d in r["data"]] == ["merged", "refused"]
    assert r["data"][1]["code"] == "offline_buyer_mismatch"
    # The personal buyer is stored like an online one's (encrypted), shown back with its salt.
    invoice = (await client.get(f"/v1/invoices/{r['data'][0]['invoice_id']}", headers=headers)).json()
    assert invoice["buyer"]["name"] == "Jean Kabila" and invoice["buyer_salt"] == right["buyer_salt"]


async def test_revocation_in_the_middle_of_a_batch(client, new_tenant):
    tenant, headers, outlet = await offline_outlet(client, new_tenant)
    device = await new_device(client, headers, tenant["id"], outlet["id"])
    r = await client.post(f"/v1/devices/{device.claims['sub']}/credentials/{device.claims['jti']}/revoke",
                          headers=headers)
    assert r.status_code == 200, r.text
    revoked = datetime.strptime(r.json()["revoked_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    items = [device.seal(issued_at=revoked - timedelta(milliseconds=2)),
             device.seal(issued_at=revoked - timedelta(milliseconds=1)),
             device.seal(issued_at=revoked + timedelta(seconds=1)),
             device.seal(issued_at=revoked + timedelta(seconds=2))]
    body = (await client.post("/v1/offline/batches", json=device.batch(items), headers=headers)).json()
    assert [d["outcome"] for d in body["data"]] == ["merged", "merged", "refused", "refused"]
    assert {d["code"] for d in body["data"][2:]} == {"offline_credential_revoked"}
