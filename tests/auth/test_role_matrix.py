"""Every tenant endpoint declares the permission it needs, and every role and scope gets exactly
what the table below says. A new endpoint without an entry here fails this test: decide who may call
it before it ships."""
from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute

from stalela.auth.permissions import ROLES, SCOPES, Perm
from tests.auth.test_users import PASSWORD, login, make_user
from tests.support.invoices import sample_invoice

# (METHOD, path) -> permission. Public and operator routes are listed apart.
TABLE: dict[tuple[str, str], Perm] = {
    ("POST", "/v1/outlets"): Perm.ADMIN,
    ("GET", "/v1/outlets"): Perm.OUTLETS_READ,
    ("GET", "/v1/outlets/{outlet_id}"): Perm.OUTLETS_READ,
    ("PATCH", "/v1/outlets/{outlet_id}"): Perm.ADMIN,
    ("PUT", "/v1/tenant/logo"): Perm.ADMIN,
    ("GET", "/v1/tenant/logo"): Perm.OUTLETS_READ,
    ("DELETE", "/v1/tenant/logo"): Perm.ADMIN,
    ("POST", "/v1/api-keys"): Perm.ADMIN,
    ("GET", "/v1/api-keys"): Perm.ADMIN,
    ("GET", "/v1/api-keys/{key_id}"): Perm.ADMIN,
    ("DELETE", "/v1/api-keys/{key_id}"): Perm.ADMIN,
    ("POST", "/v1/invoices"): Perm.INVOICES_WRITE,
    ("POST", "/v1/invoices/batch"): Perm.INVOICES_WRITE,
    ("GET", "/v1/invoices"): Perm.INVOICES_READ,
    ("GET", "/v1/invoices/{invoice_id}/pdf"): Perm.INVOICES_READ,
    ("GET", "/v1/invoices/{invoice_id}"): Perm.INVOICES_READ,
    ("GET", "/v1/invoices/{invoice_id}/proof"): Perm.INVOICES_READ,
    ("POST", "/v1/devices/challenges"): Perm.ADMIN,
    ("POST", "/v1/devices"): Perm.ADMIN,
    ("GET", "/v1/devices"): Perm.OUTLETS_READ,
    ("GET", "/v1/devices/{device_id}"): Perm.OUTLETS_READ,
    ("POST", "/v1/devices/{device_id}/disable"): Perm.ADMIN,
    ("POST", "/v1/devices/{device_id}/credentials"): Perm.ADMIN,
    ("GET", "/v1/devices/{device_id}/credentials"): Perm.OUTLETS_READ,
    ("GET", "/v1/devices/{device_id}/credentials/{jti}"): Perm.OUTLETS_READ,
    ("POST", "/v1/devices/{device_id}/credentials/{jti}/revoke"): Perm.ADMIN,
    ("GET", "/v1/offline/blocks"): Perm.INVOICES_READ,
    ("GET", "/v1/offline/blocks/{block_id}"): Perm.INVOICES_READ,
    ("POST", "/v1/offline/blocks/{block_id}/return"): Perm.INVOICES_WRITE,
    ("POST", "/v1/offline/batches"): Perm.INVOICES_WRITE,
    ("GET", "/v1/offline/batches/{batch_id}"): Perm.INVOICES_READ,
    ("GET", "/v1/offline/receipts"): Perm.INVOICES_READ,
    ("GET", "/v1/offline/fork-proofs/{proof_id}"): Perm.INVOICES_READ,
    ("POST", "/v1/ledger/checkpoints"): Perm.REPORTS_WRITE,
    ("GET", "/v1/ledger/checkpoints"): Perm.INVOICES_READ,
    ("GET", "/v1/ledger/checkpoints/latest"): Perm.INVOICES_READ,
    ("GET", "/v1/ledger/consistency"): Perm.INVOICES_READ,
    ("POST", "/v1/exports/audit"): Perm.EXPORTS,
    ("GET", "/v1/exports/{export_id}"): Perm.EXPORTS,
    ("GET", "/v1/exports/{export_id}/download"): Perm.EXPORTS,
    ("PUT", "/v1/outlets/{outlet_id}/authority-device"): Perm.ADMIN,
    ("GET", "/v1/outlets/{outlet_id}/authority-device"): Perm.ADMIN,
    ("PUT", "/v1/authority/arca/credentials"): Perm.ADMIN,
    ("GET", "/v1/authority/arca/credentials"): Perm.ADMIN,
    ("POST", "/v1/authority/arca/csr"): Perm.ADMIN,
    ("POST", "/v1/authority/arca/realign"): Perm.ADMIN,
    ("GET", "/v1/sync/status"): Perm.INVOICES_READ,
    ("POST", "/v1/users"): Perm.ADMIN,
    ("GET", "/v1/users"): Perm.ADMIN,
    ("GET", "/v1/users/{user_id}"): Perm.ADMIN,
    ("PATCH", "/v1/users/{user_id}"): Perm.ADMIN,
    ("POST", "/v1/users/invitations"): Perm.ADMIN,
    ("GET", "/v1/audit-log"): Perm.AUDIT_READ,
    ("GET", "/v1/audit-log/verify"): Perm.AUDIT_READ,
    ("POST", "/v1/privacy/erasure-requests"): Perm.PRIVACY,
    ("GET", "/v1/privacy/erasure-requests"): Perm.PRIVACY,
    ("GET", "/v1/privacy/erasure-requests/{request_id}"): Perm.PRIVACY,
    ("GET", "/v1/privacy/restricted/invoices/{invoice_id}"): Perm.RESTRICTED_READ,
    ("POST", "/v1/webhook-endpoints"): Perm.WEBHOOKS,
    ("GET", "/v1/webhook-endpoints"): Perm.WEBHOOKS,
    ("GET", "/v1/webhook-endpoints/{endpoint_id}"): Perm.WEBHOOKS,
    ("PATCH", "/v1/webhook-endpoints/{endpoint_id}"): Perm.WEBHOOKS,
    ("DELETE", "/v1/webhook-endpoints/{endpoint_id}"): Perm.WEBHOOKS,
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/rotate-secret"): Perm.WEBHOOKS,
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/test"): Perm.WEBHOOKS,
    ("GET", "/v1/webhook-endpoints/{endpoint_id}/messages"): Perm.WEBHOOKS,
    ("GET", "/v1/webhook-endpoints/{endpoint_id}/messages/{msg_id}"): Perm.WEBHOOKS,
    ("GET", "/v1/webhook-endpoints/{endpoint_id}/messages/{msg_id}/attempts"): Perm.WEBHOOKS,
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/messages/{msg_id}/retry"): Perm.WEBHOOKS,
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/recover"): Perm.WEBHOOKS,
    ("GET", "/v1/billing/invoices"): Perm.USAGE_READ,
    ("GET", "/v1/billing/invoices/{bill_id}"): Perm.USAGE_READ,
    ("GET", "/v1/billing/invoices/{bill_id}/usage"): Perm.USAGE_READ,
    ("GET", "/v1/billing/invoices/{bill_id}/pdf"): Perm.USAGE_READ,
    ("GET", "/v1/billing/estimate"): Perm.USAGE_READ,
    ("POST", "/v1/outlets/{outlet_id}/z-reports"): Perm.REPORTS_WRITE,
    ("GET", "/v1/outlets/{outlet_id}/x-report"): Perm.REPORTS_READ,
    ("GET", "/v1/z-reports"): Perm.REPORTS_READ,
    ("GET", "/v1/z-reports/{z_report_id}"): Perm.REPORTS_READ,
    ("GET", "/v1/a-reports"): Perm.REPORTS_READ,
    # Always refused with 409 (a sealed invoice is never deleted): who may ask learns why.
    ("DELETE", "/v1/invoices/{invoice_id}"): Perm.INVOICES_WRITE,
    ("GET", "/v1/privacy/retention/policies"): Perm.ADMIN,
    ("PUT", "/v1/privacy/retention/policies/{category}"): Perm.ADMIN,
    ("GET", "/v1/privacy/retention/holds"): Perm.ADMIN,
    ("POST", "/v1/privacy/retention/holds"): Perm.ADMIN,
    ("DELETE", "/v1/privacy/retention/holds/{hold_id}"): Perm.ADMIN,
    ("GET", "/v1/privacy/retention/preview"): Perm.ADMIN,
    ("POST", "/v1/privacy/exports"): Perm.ADMIN,
    ("GET", "/v1/privacy/exports"): Perm.ADMIN,
    ("GET", "/v1/privacy/exports/{privacy_export_id}"): Perm.ADMIN,
    ("DELETE", "/v1/privacy/exports/{privacy_export_id}"): Perm.ADMIN,
    ("GET", "/v1/billing/quotas"): Perm.USAGE_READ,
    ("GET", "/v1/billing/anomalies"): Perm.USAGE_READ,
    ("GET", "/v1/billing/anomalies/{anomaly_id}"): Perm.USAGE_READ,
    ("POST", "/v1/billing/anomalies/{anomaly_id}/acknowledge"): Perm.BILLING_MANAGE,
    ("POST", "/v1/billing/anomalies/{anomaly_id}/dismiss"): Perm.BILLING_MANAGE,
    ("POST", "/v1/usage/events"): Perm.USAGE_WRITE,
    ("POST", "/v1/usage/events/batch"): Perm.USAGE_WRITE,
    ("POST", "/v1/usage/events/{event_id}/void"): Perm.USAGE_WRITE,
    ("GET", "/v1/usage/events"): Perm.USAGE_READ,
    ("GET", "/v1/usage/daily"): Perm.USAGE_READ,
    ("GET", "/v1/users/me"): Perm.OUTLETS_READ,  # every role: one's own record and language
    ("PATCH", "/v1/users/me"): Perm.OUTLETS_READ,
    ("POST", "/v1/invoice-drafts"): Perm.INVOICES_DRAFT,
    ("GET", "/v1/invoice-drafts"): Perm.INVOICES_DRAFT,
    ("GET", "/v1/invoice-drafts/{draft_id}"): Perm.INVOICES_DRAFT,
    ("PATCH", "/v1/invoice-drafts/{draft_id}"): Perm.INVOICES_DRAFT,
    ("DELETE", "/v1/invoice-drafts/{draft_id}"): Perm.INVOICES_DRAFT,
    ("POST", "/v1/invoice-drafts/{draft_id}/approvals"): Perm.INVOICES_APPROVE,
    # The route admits a drafting credential; who may really seal (a person with invoices:write, a key with a
    # person's approval under a policy other than disabled) is the service's check (tests/assistants).
    ("POST", "/v1/invoice-drafts/{draft_id}/seal"): Perm.INVOICES_DRAFT,
    ("GET", "/v1/analytics/summary"): Perm.REPORTS_READ,
    ("GET", "/v1/analytics/taxes"): Perm.REPORTS_READ,
    ("GET", "/v1/analytics/types"): Perm.REPORTS_READ,
    ("GET", "/v1/analytics/outlets"): Perm.REPORTS_READ,
    ("GET", "/v1/analytics/buyers/top"): Perm.REPORTS_READ,
    ("GET", "/v1/analytics/authority"): Perm.REPORTS_READ,
    ("GET", "/v1/analytics/forecast"): Perm.REPORTS_READ,
    ("GET", "/v1/assistant-settings"): Perm.INVOICES_READ,
    ("PATCH", "/v1/assistant-settings"): Perm.ADMIN,
    ("POST", "/v1/connections"): Perm.CONNECTORS,
    ("GET", "/v1/connections"): Perm.CONNECTORS,
    ("GET", "/v1/connections/{connection_id}"): Perm.CONNECTORS,
    ("PATCH", "/v1/connections/{connection_id}"): Perm.CONNECTORS,
    ("DELETE", "/v1/connections/{connection_id}"): Perm.CONNECTORS,
    ("POST", "/v1/connections/{connection_id}/sync"): Perm.CONNECTORS,
    ("GET", "/v1/connections/{connection_id}/orders"): Perm.CONNECTORS,
    ("GET", "/v1/connections/{connection_id}/orders/{order_key}"): Perm.CONNECTORS,
    ("POST", "/v1/connections/{connection_id}/orders/{order_key}/retry"): Perm.CONNECTORS,
    ("POST", "/v1/connections/{connection_id}/orders/{order_key}/dismiss"): Perm.CONNECTORS,
}
PUBLIC = {"/healthz", "/readyz", "/verify/{invoice_id}", "/verify/{invoice_id}/qr.svg", "/verify/z/{z_report_id}", "/v1/keys/{key_id}",
          "/v1/status-lists/{tenant_id}", "/v1/status-lists/{tenant_id}.json",
          "/.well-known/jwks.json", "/v1/auth/login", "/v1/auth/refresh", "/v1/auth/logout", "/v1/auth/jwks.json",
          "/v1/users/accept", "/metrics",
          "/v1/privacy/exports/{privacy_export_id}/download",  # the link's token is the credential
          "/v1/connectors/{platform}/{connection_id}/webhooks"}  # the platform's signature is the credential
OPERATOR_PREFIXES = ("/v1/tenants", "/v1/ops/", "/v1/operators")


def _declared(route: APIRoute) -> Perm | None:
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        perm = getattr(dep.call, "required_permission", None)
        if perm is not None:
            return perm
        stack.extend(dep.dependencies)
    return None


def _all_routes(routes):
    # FastAPI keeps included routers as wrappers around the original router's routes.
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _all_routes(inner.routes)
        else:
            yield route


def _tenant_routes(app):
    for route in _all_routes(app.routes):
        if not isinstance(route, APIRoute) or route.path in PUBLIC or route.path.startswith(OPERATOR_PREFIXES):
            continue
        if not route.path.startswith("/v1/"):
            continue
        for method in route.methods - {"HEAD", "OPTIONS"}:
            yield method, route


def test_every_tenant_endpoint_declares_its_permission(app):
    seen = set()
    for method, route in _tenant_routes(app):
        key = (method, route.path)
        seen.add(key)
        assert key in TABLE, f"{method} {route.path}: add it to TABLE in {__file__} (who may call it?)"
        assert _declared(route) == TABLE[key], f"{method} {route.path} declares {_declared(route)}"
    assert not set(TABLE) - seen, f"stale entries: {set(TABLE) - seen}"


@pytest.fixture
def settings(database_url, tmp_path):
    from tests.conftest import make_settings

    return make_settings(database_url, tmp_path, argon2_time_cost=1, argon2_memory_kib=1024, argon2_parallelism=1,
                         rate_limit_burst=10_000)


async def test_each_role_and_scope_gets_exactly_its_permissions(app, client, new_tenant):
    _, root = await new_tenant("Matrix", "M1")
    outlet = (await client.post("/v1/outlets", json={"code": "M", "name": "M"}, headers=root)).json()
    invoice = (await client.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers=root)).json()
    ids = {"outlet_id": outlet["id"], "invoice_id": invoice["id"], "key_id": "key_x", "export_id": "exp_x",
           "user_id": "usr_x"}
    callers = {}
    for role in ROLES:
        await make_user(client, root, f"{role}@m.cd", role, [outlet["id"]] if role == "cashier" else [])
        r = await login(client, f"{role}@m.cd")
        assert r.status_code == 200, (role, r.text)
        tokens = r.json()
        callers[f"role:{role}"] = ({"Authorization": f"Bearer {tokens['access_token']}"}, ROLES[role])
    for scope, perms in SCOPES.items():
        key = (await client.post("/v1/api-keys", json={"name": scope, "scopes": [scope]}, headers=root)).json()
        callers[f"scope:{scope}"] = ({"Authorization": f"Bearer {key['api_key']}"}, perms)
    for method, route in _tenant_routes(app):
        url = re.sub(r"{(\w+)}", lambda m: ids.get(m.group(1), "x"), route.path)
        perm = TABLE.get((method, route.path))
        if perm is None:  # reported by the declaration test above
            continue
        for name, (headers, perms) in callers.items():
            r = await client.request(method, url, headers=headers, json={} if method in ("POST", "PUT", "PATCH") else None)
            refused = r.status_code == 403 and r.json().get("code") == "insufficient_permissions"
            assert refused == (perm not in perms), (name, method, route.path, r.status_code, r.text[:200])
            assert r.status_code < 500, (name, method, route.path, r.text[:300])
