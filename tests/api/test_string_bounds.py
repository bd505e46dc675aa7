"""Every string a request can store is bounded by the column it lands in (issue 24 item 5).

PostgreSQL refuses text longer than a ``VARCHAR(n)`` (StringDataRightTruncation) after validation has
passed: a 500. SQLite stores it silently, so only the schemas can keep the two databases alike. The
fuzz test found it once (the device ``base_url``); this test finds it everywhere: it lists every string
of every request body (and stored header) in the OpenAPI document, and each one must either name the
column it is stored in, with a schema bound that fits, or say why it is not stored as sent. A new field
fails here until someone decides which.
"""
from __future__ import annotations

import pytest
from sqlalchemy import String

from stalela.db.base import Base

# (component.field or "header Name") -> "table.column" it is stored in as sent.
STORED = {
    "TenantRegister.name": "tenants.name",
    "TenantRegister.tax_id": "tenants.tax_id",
    "TenantRegister.jurisdiction": "tenants.jurisdiction",
    "TenantRegister.tier": "tenants.tier",
    "TenantPatch.name": "tenants.name",
    "TenantRegister.locale": "tenants.locale",
    "TenantPatch.locale": "tenants.locale",
    "MoveRequest.to": "tenant_moves.to_tier",
    "ArTenantIn.vat_condition": "tenants.vat_condition",
    "OutletCreate.code": "outlets.code",
    "OutletCreate.name": "outlets.name",
    "OutletCreate.timezone": "outlets.timezone",
    "OutletCreate.address": "outlets.address",
    "OutletUpdate.name": "outlets.name",
    "OutletUpdate.timezone": "outlets.timezone",
    "OutletUpdate.address": "outlets.address",
    "OutletUpdate.status": "outlets.status",
    "ApiKeyCreate.name": "api_keys.name",
    "ApiKeyCreate.outlet_id": "api_keys.outlet_id",
    "ApiKeyCreate.scopes[]": "api_keys.scopes",
    "header Idempotency-Key": "idempotency_keys.key",
    "DeviceCreate.name": "devices.name",
    "DeviceCreate.outlet_id": "devices.outlet_id",
    "Caps.invoice_types[]": "device_credentials.caps",
    "Caps.tax_groups[]": "device_credentials.caps",
    "Caps.max_invoice_total": "device_credentials.caps",
    "CredentialRevoke.reason": "device_credentials.revocation_reason",
    "BatchItem.idempotency_key": "idempotency_keys.key",
    "InvoiceCreate.reference": "invoices.reference",
    "InvoiceCreate.original": "invoices.original",
    "DeviceIn.nim": "authority_devices.nim",
    "DeviceIn.base_url": "authority_devices.base_url",
    "ArcaCredentialsIn.certificate": "arca_credentials.certificate_pem",
    "ArcaCredentialsIn.environment": "arca_credentials.environment",
    "ArcaCredentialsIn.wsaa_url": "arca_credentials.wsaa_url",
    "ArcaCredentialsIn.wsfe_url": "arca_credentials.wsfe_url",
    "ArcaCsrIn.environment": "arca_credentials.environment",
    "UserCreate.email": "users.email",
    "OperatorCreate.email": "operator_users.email",
    "OperatorCreate.name": "operator_users.name",
    "OperatorCreate.role": "operator_users.role",
    "OperatorUpdate.name": "operator_users.name",
    "OperatorUpdate.role": "operator_users.role",
    "OperatorUpdate.status": "operator_users.status",
    "OperatorUpdate.locale": "operator_users.locale",
    "UserCreate.name": "users.name",
    "UserCreate.role": "users.role",
    "UserCreate.outlet_ids[]": "users.outlet_ids",
    "UserUpdate.name": "users.name",
    "MeUpdate.locale": "users.locale",
    "UserUpdate.role": "users.role",
    "UserUpdate.status": "users.status",
    "UserUpdate.outlet_ids[]": "users.outlet_ids",
    "InvitationCreate.email": "invitations.email",
    "InvitationCreate.name": "invitations.name",
    "InvitationCreate.role": "invitations.role",
    "InvitationCreate.outlet_ids[]": "invitations.outlet_ids",
    "EndpointCreate.url": "webhook_endpoints.url",
    "PlanCreate.id": "billing_plans.id",
    "PlanCreate.name": "billing_plans.name",
    "PlanCreate.currency": "billing_plans.currency",
    "PlanUpdate.name": "billing_plans.name",
    "AccountUpdate.plan_id": "billing_accounts.plan_id",
    "AccountUpdate.anomaly_method": "billing_accounts.anomaly_method",
    "IssuerIn.tenant_id": "billing_issuer.issuer_tenant_id",
    "IssuerIn.outlet_id": "billing_issuer.issuer_outlet_id",
    "ExchangeRateIn.currency": "billing_exchange_rates.currency",
    "ExchangeRateIn.invoice_currency": "billing_exchange_rates.invoice_currency",
    "EndpointCreate.description": "webhook_endpoints.description",
    "EndpointCreate.event_types[]": "webhook_endpoints.event_types",
    "EndpointUpdate.url": "webhook_endpoints.url",
    "EndpointUpdate.description": "webhook_endpoints.description",
    "EndpointUpdate.event_types[]": "webhook_endpoints.event_types",
    "HoldCreate.reason": "retention_holds.reason",
    "HoldScopeIn.outlet_id": "retention_holds.outlet_id",
    "PrivacyExportCreate.scope": "privacy_exports.scope",
    "UsageEventIn.event_id": "usage_events.event_id",
    "UsageEventIn.resource": "usage_events.resource",
    "VoidIn.reason": "usage_voids.reason",
    "DraftCreate.locale": "invoice_drafts.locale",
    "SettingsPatch.seal_policy": "assistant_settings.seal_policy",
    "ConnectionCreate.platform": "connections.platform",
    "ConnectionCreate.shop": "connections.shop",
    "ConnectionCreate.outlet_id": "connections.outlet_id",
    "ConnectionCreate.api_base_url": "connections.api_base_url",
    "ConnectionUpdate.status": "connections.status",
}

# Strings that are not stored as sent, and why.
NOT_STORED = {
    "ConnectionCreate.webhook_id": "digits, at most 40, kept in connections.options (TEXT) beside the mapping options",
    "ConnectionUpdate.webhook_id": "digits, at most 40, kept in connections.options (TEXT) beside the mapping options",
    "ConnectionCreate.backfill_since": "an RFC 3339 time, stored as the poll cursor in its own 27-character form",
    "DeviceCreate.nonce": "looked up among the tenant's challenges and spent; the stored nonce is the server's",
    "DeviceCreate.proof": "a signature, verified and never stored",
    "CredentialCreate.invoice_type": "one of the jurisdiction's invoice types allowed by the caps; the block's series is chosen by it",
    "PublicKey.kty": "a device's public JWK is rebuilt before it is stored (devices.public_jwk): kty and crv must be EC P-256, x and y a point on the curve; kid, alg and use as given are dropped",
    "PublicKey.crv": "a device's public JWK is rebuilt before it is stored (devices.public_jwk): kty and crv must be EC P-256, x and y a point on the curve; kid, alg and use as given are dropped",
    "PublicKey.x": "a device's public JWK is rebuilt before it is stored (devices.public_jwk): kty and crv must be EC P-256, x and y a point on the curve; kid, alg and use as given are dropped",
    "PublicKey.y": "a device's public JWK is rebuilt before it is stored (devices.public_jwk): kty and crv must be EC P-256, x and y a point on the curve; kid, alg and use as given are dropped",
    "PublicKey.kid": "a device's public JWK is rebuilt before it is stored (devices.public_jwk): kty and crv must be EC P-256, x and y a point on the curve; kid, alg and use as given are dropped",
    "PublicKey.alg": "a device's public JWK is rebuilt before it is stored (devices.public_jwk): kty and crv must be EC P-256, x and y a point on the curve; kid, alg and use as given are dropped",
    "PublicKey.use": "a device's public JWK is rebuilt before it is stored (devices.public_jwk): kty and crv must be EC P-256, x and y a point on the curve; kid, alg and use as given are dropped",
    "body": "PUT /v1/tenant/logo's image (at most 512 KB): decoded, re-encoded and stored as binary "
            "(tenant_logos.data), never as text",
    "TenantRegister.target": "a configured server's host:port, looked up (422 unknown_server); the placement stored "
                             "is the configured template's URL",
    "MoveRequest.target": "a configured server's host:port, looked up (422 unknown_server); the placement stored "
                          "is the configured template's URL",
    "TenantPatch.rate_limit_per_second": "a decimal (> 0, 3 places), stored as NUMERIC(10,3)",
    "InvoiceCreate.outlet_id": "looked up: an unknown id is 422 outlet_not_found before anything is written",
    # Checked below: every jurisdiction's codes fit the column.
    "InvoiceCreate.type": "only a code of the jurisdiction's list is stored (the rules refuse any other)",
    **{f"{c}.{f}": "inside the sealed document (TEXT)" for c, fs in {
        "InvoiceCreate": ("price_mode", "nature", "currency", "concept", "service_from", "service_to",
                          "payment_due", "exchange_rate"),
        "LineIn": ("description", "code", "item_type", "tax_group", "vat_rate", "quantity", "unit_price"),
        "BuyerIn": ("type", "name", "tax_id", "exemption_ref", "doc_type", "doc_number", "vat_condition"),
        "PaymentIn": ("method", "amount"),
        "ExchangeIn": ("currency", "rate", "date")}.items() for f in fs},
    "OffboardingCreate.mode": "one of return/delete (a Literal), stored as such",
    "DraftCreate.text": "stored in invoice_drafts.text (TEXT), at most 2,000 characters",
    "DraftCreate.provider": "the one provider, rules (a Literal), stored as such in invoice_drafts.provider",
    "SealDraft.approval_id": "looked up among the draft's approvals (404 draft_approval_not_found); never stored",
    "SettingsPatch.confidence_threshold": "a decimal (0.85 to 1, 4 places), stored as NUMERIC(6,4)",
    **{f"Subject.{f}": "an erasure request keeps only its keyed HMAC pseudonym (privacy_erasure_requests.pseudonyms)"
       for f in ("email", "tax_id", "reference")},
    "UserSubject.email": "an erasure request keeps only its keyed HMAC pseudonym",
    **{f"BuyerIn.{f}": "encrypted under the buyer's subject key (invoices.buyer_sealed, bytes)"
       for f in ("email", "phone", "address", "reference")},
    "DeviceIn.token": "stored encrypted (bytes)",
    "BatchCreate.credential": "verified, and compared with the issued credential (device_credentials.token, TEXT); "
                              "a fork proof keeps it inside its signed payload (TEXT)",
    "BatchInvoice.buyer_salt": "checked against the signed commitment; kept in the sealed document (TEXT) or "
                               "encrypted with the buyer (bytes)",
    **{f"ReturnStatement.{f}": "verified against the credential's cnf key; only its hash is sealed in the "
                               "numbers_voided record (TEXT)" for f in ("hash", "signature", "key_id", "algorithm")},
    "RealignIn.outlet_id": "looked up: an unknown id is 404 outlet_not_found",
    "RealignIn.type": "checked against the AR receipt types; stored as a series code (the types fit)",
    "ArcaCredentialsIn.private_key": "stored encrypted (bytes)",
    "ArcaCsrIn.organization": "only in the CSR returned", "ArcaCsrIn.alias": "only in the CSR returned",
    "LoginIn.email": "looked up", "LoginIn.password": "compared with a hash", "LoginIn.tenant_id": "looked up",
    "UserCreate.password": "stored as its Argon2id hash", "OperatorCreate.password": "stored as its Argon2id hash", "AcceptIn.password": "stored as its Argon2id hash",
    "AcceptIn.token": "looked up by its hash", "RefreshIn.refresh_token": "looked up by its hash",
    "ReplayRequest.ids[]": "looked up", "ReplayRequest.topic": "a filter of the replay",
    "ExportRequest.from": "a date", "ExportRequest.to": "a date", "ZClose.business_day": "a date",
    "RecoverRequest.since": "a date-time", "RecoverRequest.until": "a date-time",
    "HoldScopeIn.from": "a date", "HoldScopeIn.to": "a date",
    "RateCardCreate.effective_from": "a date",
    "AccountUpdate.anomaly_threshold": "a decimal of at most 3 + 1 + 4 characters, stored normalised (String(16))",
    **{f"PrivacySubject.{f}": "stored encrypted (bytes), until the export is built" for f in ("email", "tax_id", "reference")},
    "UsageEventIn.quantity": "parsed into integer minor units (usage_events.quantity_units)",
    "UsageEventIn.occurred_at": "a date-time",
    "ExchangeRateIn.rate": "a decimal of at most 12 + 1 + 6 characters, stored normalised (String(24))",
}


def _request_strings(spec: dict) -> dict[str, dict]:
    """'Component.field' (or 'header Name') -> its string schema, for every write's body and headers."""
    schemas, found, seen = spec["components"]["schemas"], {}, set()

    def walk(node: dict, where: str) -> None:
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            if name not in seen:
                seen.add(name)
                for field, sub in schemas[name].get("properties", {}).items():
                    walk(sub, f"{name}.{field}")
            return
        for key in ("anyOf", "oneOf", "allOf"):
            for sub in node.get(key, []):
                walk(sub, where)
        if "items" in node:
            walk(node["items"], f"{where}[]")
        if node.get("type") == "string":
            found[where] = node

    for ops in spec["paths"].values():
        for method, op in ops.items():
            if method in ("post", "put", "patch"):
                for param in op.get("parameters", []):
                    if param["in"] == "header":
                        walk(param["schema"], f"header {param['name']}")
                for media in op.get("requestBody", {}).get("content", {}).values():
                    walk(media["schema"], "body")
    return found


def _longest(schema: dict) -> int | None:
    if "enum" in schema:
        return max(len(v) for v in schema["enum"])
    return schema.get("maxLength")


async def test_every_stored_request_string_fits_its_column(app):
    columns = {f"{t.name}.{c.name}": c for t in Base.metadata.tables.values() for c in t.columns}
    strings = _request_strings(app.openapi())
    undecided = sorted(set(strings) - set(STORED) - set(NOT_STORED))
    assert undecided == [], "say where each new request string is stored (STORED) or why not (NOT_STORED)"
    assert sorted((set(STORED) | set(NOT_STORED)) - set(strings)) == []  # no stale entries
    too_long = []
    for where, column_name in STORED.items():
        column = columns[column_name]
        limit = column.type.length if isinstance(column.type, String) else None
        if limit is not None and (_longest(strings[where]) is None or _longest(strings[where]) > limit):
            too_long.append(f"{where}: at most {_longest(strings[where])} characters, {column_name} holds {limit}")
    assert too_long == []


async def test_a_forwarded_address_that_is_not_an_ip_is_not_stored(app, client, new_tenant):
    """The audit log's ``ip`` (64 characters) comes from X-Forwarded-For behind a trusted proxy, which
    uvicorn (``stalela serve``: proxy headers, loopback trusted) passes on as any text."""
    import httpx
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    _, key = await new_tenant()
    user = {"email": "ip@org.cd", "name": "Ip", "role": "accountant", "password": "correct horse battery staple"}
    assert (await client.post("/v1/users", json=user, headers=key)).status_code == 201
    proxied = httpx.AsyncClient(transport=httpx.ASGITransport(app=ProxyHeadersMiddleware(app, "127.0.0.1")),
                                base_url="http://test")
    async with proxied:
        for forwarded, stored in [("x" * 100, "unknown"), ("2001:db8::1", "2001:db8::1")]:
            r = await proxied.post("/v1/auth/login", json={"email": user["email"], "password": user["password"]},
                                   headers={"X-Forwarded-For": forwarded})
            assert r.status_code == 200, r.text
            log = (await client.get("/v1/audit-log", headers=key)).json()["data"]
            assert [e["ip"] for e in log if e["action"] == "auth.login"][0] == stored


@pytest.mark.parametrize("path", ["/v1/users", "/v1/users/invitations"])
async def test_an_email_that_grows_when_lowercased_beyond_its_column_is_a_422(client, new_tenant, path):
    # Emails are stored lowercased, and lowercasing can lengthen text: "İ".lower() is two characters.
    _, key = await new_tenant()
    body = {"email": "İ" * 200 + "@x.cd", "name": "Long", "role": "accountant", "password": "correct horse battery"}
    if path.endswith("invitations"):
        del body["password"]
    r = await client.post(path, json=body, headers=key)
    assert r.status_code == 422, r.text
    assert (r.json()["field"], r.json()["errors"][0]["code"]) == ("email", "string_too_long")


def test_every_jurisdictions_invoice_types_fit_their_column():
    from stalela.fiscal.invoices.models import Invoice
    from stalela.fiscal.jurisdictions import REGISTRY

    codes = {t for j in REGISTRY.values() for t in j.invoice_types | j.credit_note_types}
    assert codes and max(len(c) for c in codes) <= Invoice.__table__.c.type.type.length


IDN_HOST = ".".join(["äöü"] * 22) + ".cd"  # 90 characters, 244 once IDNA-encoded as it is stored


@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_a_webhook_url_that_grows_when_idna_encoded_beyond_its_column_is_a_422(client, new_tenant, method):
    _, key = await new_tenant()
    url = f"https://{IDN_HOST}/" + "a" * (2000 - len(IDN_HOST) - 9)  # 2000 characters sent, 2154 stored
    path = "/v1/webhook-endpoints"
    if method == "PATCH":
        made = await client.post(path, json={"url": "https://hooks.example.com/in"}, headers=key)
        path += f"/{made.json()['id']}"
    r = await client.request(method, path, json={"url": url}, headers=key)
    assert r.status_code == 422, r.text
    assert (r.json()["field"], r.json()["errors"][0]["code"]) == ("url", "string_too_long")
    r = await client.request(method, path, json={"url": url[:-154]}, headers=key)  # 2000 once encoded: fits
    assert r.status_code in (200, 201), r.text
