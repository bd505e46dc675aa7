"""Record real requests and answers for the OpenAPI examples: `python -m tests.api.record_examples`.

Runs the app in-process on a fresh SQLite database through a merchant's and an operator's day (tenant, outlet,
invoices, ledger, reports, users, sync, outbox) and writes the JSON answers of the routes that return plain
dicts, by ``"METHOD /path"`` and status, into ``src/stalela/kit/openapi_examples.json``. Entries it does not
record (written by hand: ARCA, which needs a certificate) are kept. Rerun it when an answer's shape changes;
``tests/api/test_openapi_examples.py`` fails on an example that no longer matches its schema."""
from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from stalela.app import create_app
from stalela.kit.openapi_examples import EXAMPLES_FILE
from stalela.migrations import upgrade
from tests.conftest import OPERATOR_TOKEN, make_settings
from tests.support.invoices import sample_invoice
from tests.offline.support import es256, register_device
from stalela.db.base import utcnow
from stalela.fiscal.core import offline as core_offline
from stalela.fiscal.core.seal import build_seal, canonical_bytes
from stalela.kit.clock import rfc3339

OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


class Recorder:
    def __init__(self, client: httpx.AsyncClient, app: Any) -> None:
        self.client, self.app, self.table = client, app, {}

    async def __call__(self, method: str, template: str, path: str | None = None, *, headers: dict | None = None,
                      json_body: Any = None, params: dict | None = None, record_request: bool = True,
                      optional: bool = False) -> Any:
        r = await self.client.request(method, path or template, headers=headers, json=json_body, params=params)
        if r.status_code >= 400 and optional:  # a capability this server's settings leave off: the schema's example
            print(f"not recorded: {method} {path or template}: {r.status_code} {r.text[:200]}", file=sys.stderr)
            return None
        if r.status_code >= 400:
            raise AssertionError(f"{method} {path or template}: {r.status_code} {r.text}")
        entry = self.table.setdefault(f"{method} {template}", {})
        if json_body is not None and record_request:
            entry["request"] = json_body
        if r.headers.get("content-type", "").startswith("application/json"):
            entry[str(r.status_code)] = r.json()
            return r.json()
        return r


async def scenario(rec: Recorder) -> None:
    created = await rec("POST", "/v1/tenants", headers=OPERATOR, record_request=False,
                        json_body={"name": "Boutique Kin SARL", "tax_id": "A1234567B", "jurisdiction": "CD"})
    tenant, key = created["tenant"], {"Authorization": f"Bearer {created['api_key']}"}
    outlet = await rec("POST", "/v1/outlets", headers=key, json_body={
        "code": "KIN1", "name": "Gombe", "address": "12 avenue du Commerce, Gombe, Kinshasa",
        "timezone": "Africa/Kinshasa"})
    out = outlet["id"]
    await rec("GET", "/v1/outlets", headers=key)
    await rec("GET", "/v1/outlets/{outlet_id}", f"/v1/outlets/{out}", headers=key)
    await rec("PATCH", "/v1/outlets/{outlet_id}", f"/v1/outlets/{out}", headers=key, json_body={"name": "Gombe centre"})
    till = await rec("POST", "/v1/api-keys", headers=key, json_body={
        "name": "Till 1", "outlet_id": out, "scopes": ["invoices:write", "invoices:read"]})
    await rec("GET", "/v1/api-keys", headers=key, params={"limit": 2})
    await rec("GET", "/v1/api-keys/{key_id}", f"/v1/api-keys/{till['id']}", headers=key)
    await rec("DELETE", "/v1/api-keys/{key_id}", f"/v1/api-keys/{till['id']}", headers=key)
    ten = created["tenant"]["id"]
    await rec("GET", "/v1/tenants", headers=OPERATOR, params={"limit": 1})
    await rec("GET", "/v1/tenants/{tenant_id}", f"/v1/tenants/{ten}", headers=OPERATOR)
    await rec("PATCH", "/v1/tenants/{tenant_id}", f"/v1/tenants/{ten}", headers=OPERATOR,
              json_body={"rate_limit_per_second": "50", "rate_limit_burst": 100})
    await rec("POST", "/v1/tenants/{tenant_id}/suspend", f"/v1/tenants/{ten}/suspend", headers=OPERATOR)
    await rec("POST", "/v1/tenants/{tenant_id}/activate", f"/v1/tenants/{ten}/activate", headers=OPERATOR)
    hook = await rec("POST", "/v1/webhook-endpoints", headers=key, json_body={
        "url": "https://erp.example.cd/hooks/stalela", "description": "ERP",
        "event_types": ["invoice.sealed", "report.z_closed"]})
    await rec("GET", "/v1/webhook-endpoints", headers=key)
    await rec("GET", "/v1/webhook-endpoints/{endpoint_id}", f"/v1/webhook-endpoints/{hook['id']}", headers=key)
    await rec("PATCH", "/v1/webhook-endpoints/{endpoint_id}", f"/v1/webhook-endpoints/{hook['id']}", headers=key,
              json_body={"description": "ERP (production)"})
    message = await rec("POST", "/v1/webhook-endpoints/{endpoint_id}/test", f"/v1/webhook-endpoints/{hook['id']}/test",
                        headers=key)
    await rec("GET", "/v1/webhook-endpoints/{endpoint_id}/messages", f"/v1/webhook-endpoints/{hook['id']}/messages",
              headers=key)
    await rec("GET", "/v1/webhook-endpoints/{endpoint_id}/messages/{msg_id}",
              f"/v1/webhook-endpoints/{hook['id']}/messages/{message['id']}", headers=key)
    await rec("POST", "/v1/usage/events", headers=key, json_body={
        "event_id": "job-42", "resource": "cpu_seconds", "quantity": "12.5", "occurred_at": "2026-11-20T09:15:00Z",
        "properties": {"job": "nightly-export"}}, optional=True)
    await rec("GET", "/v1/usage/events", headers=key, params={"limit": 2}, optional=True)
    body = sample_invoice(out, reference="POS-2026-000123")
    sealed = await rec("POST", "/v1/invoices", headers={**key, "Idempotency-Key": "pos-123"}, json_body=body)
    inv = sealed["id"]
    await rec("POST", "/v1/invoices/batch", headers=key, json_body={"items": [
        {"idempotency_key": "pos-124", "invoice": sample_invoice(out, reference="POS-2026-000124")},
        {"invoice": sample_invoice(out, type="XX")}]})
    await rec("GET", "/v1/invoices", headers=key, params={"limit": 2})
    await rec("GET", "/v1/invoices/{invoice_id}", f"/v1/invoices/{inv}", headers=key)
    await rec("POST", "/v1/ledger/checkpoints", headers=key)
    await rec("POST", "/v1/invoices", headers=key, json_body=sample_invoice(out), record_request=False)
    checkpoint = await rec("POST", "/v1/ledger/checkpoints", headers=key)
    await rec("GET", "/v1/ledger/checkpoints", headers=key, params={"limit": 2})
    await rec("GET", "/v1/ledger/checkpoints/latest", headers=key)
    await rec("GET", "/v1/ledger/consistency", headers=key, params={"first": 2, "second": checkpoint["tree_size"]})
    await rec("GET", "/v1/invoices/{invoice_id}/proof", f"/v1/invoices/{inv}/proof", headers=key)
    export = await rec("POST", "/v1/exports/audit", headers=key, json_body={"from": "2026-01-01", "to": "2027-01-01"})
    await rec("GET", "/v1/exports/{export_id}", f"/v1/exports/{export['id']}", headers=key)
    await rec("GET", "/v1/keys/{key_id}", f"/v1/keys/{sealed['seal']['key_id']}")
    await rec("GET", "/.well-known/jwks.json")
    await rec("GET", "/verify/{invoice_id}", f"/verify/{inv}", headers={"Accept": "application/json"})
    await rec("PUT", "/v1/outlets/{outlet_id}/authority-device", f"/v1/outlets/{out}/authority-device", headers=key,
              json_body={"nim": "NIM1", "base_url": "https://dgi.example.cd/emcf", "token": "device-token"})
    await rec("GET", "/v1/outlets/{outlet_id}/authority-device", f"/v1/outlets/{out}/authority-device", headers=key)
    await rec("GET", "/v1/sync/status", headers=key)
    await rec("GET", "/v1/ops/outbox", headers=OPERATOR)
    await rec("GET", "/v1/ops/outbox/dead", headers=OPERATOR)
    await rec("POST", "/v1/ops/outbox/replay", headers=OPERATOR, json_body={"topic": "invoice.sealed"})
    # Users and sign-in.
    user = await rec("POST", "/v1/users", headers=key, json_body={
        "email": "awa@example.cd", "name": "Awa", "role": "accountant", "password": "a long passphrase"})
    await rec("GET", "/v1/users", headers=key)
    await rec("GET", "/v1/users/{user_id}", f"/v1/users/{user['id']}", headers=key)
    await rec("PATCH", "/v1/users/{user_id}", f"/v1/users/{user['id']}", headers=key, json_body={"name": "Awa Mbuyi"})
    invitation = await rec("POST", "/v1/users/invitations", headers=key, json_body={
        "email": "kito@example.cd", "name": "Kito", "role": "cashier", "outlet_ids": [out]})
    await rec("POST", "/v1/users/accept", json_body={"token": invitation["token"], "password": "another long one"})
    tokens = await rec("POST", "/v1/auth/login", json_body={"email": "awa@example.cd", "password": "a long passphrase"})
    await rec("POST", "/v1/auth/refresh", json_body={"refresh_token": tokens["refresh_token"]})
    await rec("GET", "/v1/auth/jwks.json")
    await rec("GET", "/v1/audit-log", headers=key, params={"limit": 2})
    await rec("GET", "/v1/audit-log/verify", headers=key)
    # Reports.
    await rec("GET", "/v1/outlets/{outlet_id}/x-report", f"/v1/outlets/{out}/x-report", headers=key)
    z = await rec("POST", "/v1/outlets/{outlet_id}/z-reports", f"/v1/outlets/{out}/z-reports", headers=key,
                  json_body={})
    await rec("POST", "/v1/outlets/{outlet_id}/z-reports", f"/v1/outlets/{out}/z-reports", headers=key,
              json_body={"business_day": z["business_day"]})  # the same day again: 200, the sealed Z
    await rec("GET", "/v1/z-reports", headers=key)
    await rec("GET", "/v1/z-reports/{z_report_id}", f"/v1/z-reports/{z['id']}", headers=key)
    await rec("GET", "/v1/a-reports", headers=key, params={"from": z["business_day"], "to": z["business_day"]})
    await rec("GET", "/verify/z/{z_report_id}", f"/verify/z/{z['id']}", headers={"Accept": "application/json"},
              params={"h": z["seal"]["hash"]} if "seal" in z else None)
    await rec.client.post("/v1/users", headers=key, json={"email": "audit@example.cd", "name": "Audit", "role": "auditor",
                                                           "password": "an auditor's passphrase"})
    auditor = (await rec.client.post("/v1/auth/login", json={"email": "audit@example.cd",
                                                              "password": "an auditor's passphrase"})).json()
    reader = {"access_token": auditor["access_token"]}
    await rec("GET", "/v1/privacy/restricted/invoices/{invoice_id}", f"/v1/privacy/restricted/invoices/{inv}",
              headers={"Authorization": f"Bearer {reader['access_token']}"})
    # Offline sealing: a device's block, listed, shown, and its whole tail returned unused.
    device, device_key = await register_device(rec.client, key, ten, out)
    credential = (await rec.client.post(f"/v1/devices/{device['id']}/credentials", headers=key,
                                        json={"block_size": 50})).json()
    await rec("GET", "/v1/offline/blocks", headers=key)
    block = await rec("GET", "/v1/offline/blocks/{block_id}", f"/v1/offline/blocks/{credential['block_id']}",
                      headers=key)
    statement = core_offline.return_payload(
        tenant_id=ten, block_id=block["id"], credential=credential["jti"], first=block["first"], last=block["last"],
        prev_hash=block["state"]["head"], at=rfc3339(utcnow()))
    data = canonical_bytes(statement)
    await rec("POST", "/v1/offline/blocks/{block_id}/return", f"/v1/offline/blocks/{block['id']}/return", headers=key,
              json_body=build_seal(statement, es256(device_key, data), device["public_key"]["kid"],
                                   canonical_payload=data))
    await drafts(rec, key)
    await rec("GET", "/healthz")
    await rec("GET", "/readyz")
    del tenant


async def drafts(rec: Recorder, key: dict) -> None:
    """Drafting (docs/assistants.md): an assistant's key drafts, corrects and seals with a person's approval (made
    with another credential: never the drafter's own); another draft discarded."""
    async def new_key(name: str, scopes: list[str]) -> dict:
        made = (await rec.client.post("/v1/api-keys", headers=key, json={"name": name, "scopes": scopes})).json()
        return {"Authorization": f"Bearer {made['api_key']}"}

    approver = await new_key("approvals app", ["invoices:approve"])  # a person's approvals app
    agent = await new_key("assistant", ["invoices:draft", "invoices:read"])
    await rec("GET", "/v1/assistant-settings", headers=key)
    await rec("PATCH", "/v1/assistant-settings", headers=key, json_body={"seal_policy": "approval"})
    text = "Facture pour Kin Marché SARL NIF A1234567Z: 3 sacs de ciment à 25000 FC"
    draft = await rec("POST", "/v1/invoice-drafts", headers=agent, json_body={"text": text, "locale": "fr"})
    path = f"/v1/invoice-drafts/{draft['id']}"
    await rec("GET", "/v1/invoice-drafts", headers=agent)
    await rec("GET", "/v1/invoice-drafts/{draft_id}", path, headers=agent)
    fixed = {**draft["invoice"], "lines": [{**draft["invoice"]["lines"][0], "description": "Sacs de ciment 50 kg"}]}
    await rec("PATCH", "/v1/invoice-drafts/{draft_id}", path, headers=agent, json_body={"invoice": fixed})
    approval = await rec("POST", "/v1/invoice-drafts/{draft_id}/approvals", f"{path}/approvals", headers=approver,
                         json_body={"expires_in": 900})
    await rec("POST", "/v1/invoice-drafts/{draft_id}/seal", f"{path}/seal", headers=agent,
              json_body={"approval_id": approval["id"]})
    other = await rec.client.post("/v1/invoice-drafts", headers=agent, json={"text": text})
    await rec("DELETE", "/v1/invoice-drafts/{draft_id}", f"/v1/invoice-drafts/{other.json()['id']}", headers=agent)


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'examples.db'}"
        await upgrade(url)
        app = create_app(make_settings(url, Path(tmp)))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="https://api.stalela.example") as client:
                rec = Recorder(client, app)
                await scenario(rec)
    keep = json.loads(EXAMPLES_FILE.read_text(encoding="utf-8")) if EXAMPLES_FILE.is_file() else {}
    keep.update(rec.table)
    EXAMPLES_FILE.write_text(json.dumps(dict(sorted(keep.items())), indent=1, ensure_ascii=False) + "\n",
                             encoding="utf-8")
    print(f"{len(rec.table)} operations recorded into {EXAMPLES_FILE}", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
