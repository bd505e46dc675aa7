"""ARCA credentials per tenant (routes) and the WSAA ticket cache shared across processes, on both databases."""
from __future__ import annotations

import asyncio
import base64
import shutil
import subprocess
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from cryptography import x509
from lxml import etree
from sqlalchemy import update

from stalela.app import create_app
from stalela.authority.arca import service, wsaa
from stalela.authority.arca.errors import NotConfigured, TicketUnavailable
from stalela.authority.arca.models import ArcaTicket
from stalela.db.session import Database
from stalela.tenancy.context import bind_platform, bind_tenant
from stalela.tenancy.models import Tenant
from tests.authority.arca.conftest import CUIT, FakeWsaa, make_certificate, pem
from tests.conftest import OPERATOR_TOKEN, make_settings

OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
PATH = "/v1/authority/arca/credentials"


class World:
    def __init__(self, app, client, settings):
        self.app, self.client, self.settings, self.db = app, client, settings, app.state.db

    async def tenant(self, name: str = "Kiosco SRL", cuit: str | None = CUIT) -> tuple[str, dict]:
        """A tenant created through the API, then made AR in the database (the AR tenant API is the lead's),
        before its key is ever used (an authenticated key caches the tenant's jurisdiction)."""
        r = await self.client.post("/v1/tenants", json={"name": name, "tax_id": "A0000001B", "jurisdiction": "CD"},
                                   headers=OPERATOR)
        assert r.status_code == 201, r.text
        tenant_id = r.json()["tenant"]["id"]
        if cuit is not None:
            async with self.db.transaction() as s:
                await bind_platform(s)
                await s.execute(update(Tenant).where(Tenant.id == tenant_id).values(jurisdiction="AR", tax_id=cuit))
        return tenant_id, {"Authorization": f"Bearer {r.json()['api_key']}"}


async def _world(settings):
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield World(app, client, settings)


@pytest.fixture
async def world(database_url, tmp_path):
    # Loopback allowed: the WSAA of these tests is a server on 127.0.0.1 (environment custom).
    async for w in _world(make_settings(database_url, tmp_path, webhooks_allow_private=True)):
        yield w


@pytest.fixture
async def hsm_world(database_url, tmp_path, softhsm_token):
    settings = make_settings(database_url, tmp_path, webhooks_allow_private=True,
                             pkcs11_library=softhsm_token.library_path, pkcs11_token_label=softhsm_token.token_label,
                             pkcs11_pin=softhsm_token.pin)
    async for w in _world(settings):
        yield w


def body(cert, key=None, environment="homologation", **urls):
    out = {"certificate": pem(cert), "environment": environment, **urls}
    if key is not None:
        out["private_key"] = pem(key)
    return out


def custom(soap_server):
    return {"environment": "custom", "wsaa_url": soap_server.url + "/ws/services/LoginCms",
            "wsfe_url": soap_server.url + "/wsfev1/service.asmx"}


# --- routes --------------------------------------------------------------------------------------


async def test_put_then_get_shows_the_certificate_never_the_key(world):
    _, headers = await world.tenant()
    cert, key = make_certificate()
    r = await world.client.put(PATH, json=body(cert, key), headers=headers)
    assert r.status_code == 200, r.text
    got = (await world.client.get(PATH, headers=headers)).json()
    assert got["cuit"] == CUIT and "serialNumber=CUIT 20267565393" in got["subject"]
    assert got["environment"] == "homologation" and got["status"] == "active" and got["key"] == "stored encrypted"
    assert got["wsaa_url"] == wsaa.HOMOLOGATION_URL and got["wsfe_url"].startswith("https://wswhomo.afip.gov.ar/")
    assert got["not_after"].startswith(cert.not_valid_after_utc.strftime("%Y-%m-%d"))
    assert "PRIVATE" not in r.text + str(got)
    r = await world.client.put(PATH, json=body(cert, key, environment="production"), headers=headers)
    assert r.json()["wsaa_url"] == wsaa.PRODUCTION_URL


async def test_each_bad_input_is_a_422_on_its_field(world):
    _, headers = await world.tenant()
    cert, key = make_certificate()
    other_cert, other_key = make_certificate()
    cases = [
        ({"certificate": "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----", "private_key": pem(key),
          "environment": "homologation"}, "certificate", "certificate_invalid"),
        ({**body(cert), "private_key": "garbage"}, "private_key", "private_key_invalid"),
        (body(cert, other_key), "private_key", "key_mismatch"),
        (body(*make_certificate("20111111112")), "certificate", "certificate_cuit_mismatch"),
        (body(*make_certificate(days=-1, not_before_days=-30)), "certificate", "certificate_expired"),
        (body(cert, key, environment="custom"), "wsaa_url", "required"),
        (body(cert, key, wsaa_url="https://evil.example/x"), "wsaa_url", "arca_url_not_allowed"),
        (body(cert, key, environment="custom", wsaa_url="ftp://x.example/", wsfe_url="https://x.example/"),
         "wsaa_url", "arca_url_invalid"),
        (body(cert), "private_key", "required"),  # no key and no CSR made here
        (body(cert, key, environment="staging"), "environment", "literal_error"),
    ]
    for payload, field, code in cases:
        r = await world.client.put(PATH, json=payload, headers=headers)
        assert r.status_code == 422, (code, r.text)
        problem = r.json()
        assert problem["field"] == field and (problem["code"] == code or problem["errors"][0]["code"] == code), (
            code, problem)
    assert (await world.client.get(PATH, headers=headers)).status_code == 404  # nothing was stored


async def test_only_ar_tenants(world):
    _, headers = await world.tenant(cuit=None)  # a DRC tenant
    cert, key = make_certificate()
    r = await world.client.put(PATH, json=body(cert, key), headers=headers)
    assert (r.status_code, r.json()["code"]) == (409, "jurisdiction_mismatch")
    r = await world.client.post("/v1/authority/arca/csr", json={"environment": "homologation", "organization": "X",
                                                                "alias": "x"}, headers=headers)
    assert (r.status_code, r.json()["code"]) == (409, "jurisdiction_mismatch")


async def test_another_tenant_cannot_see_them(world):
    _, headers = await world.tenant("Uno SRL")
    _, other = await world.tenant("Dos SRL", cuit="20111111112")
    cert, key = make_certificate()
    assert (await world.client.put(PATH, json=body(cert, key), headers=headers)).status_code == 200
    r = await world.client.get(PATH, headers=other)
    assert (r.status_code, r.json()["code"]) == (404, "arca_credentials_not_found")
    assert CUIT not in r.text


async def test_csr_needs_a_configured_hsm(world):
    _, headers = await world.tenant()
    r = await world.client.post("/v1/authority/arca/csr", json={"environment": "homologation",
                                                                "organization": "Kiosco SRL", "alias": "stalela"},
                                headers=headers)
    assert (r.status_code, r.json()["code"]) == (409, "hsm_not_configured")


@pytest.mark.hsm
async def test_csr_key_stays_in_the_hsm_and_signs_the_login(hsm_world, soap, tmp_path):
    tenant_id, headers = await hsm_world.tenant()
    r = await hsm_world.client.post("/v1/authority/arca/csr", json={
        "environment": "homologation", "organization": "Kiosco SRL", "alias": "stalela"}, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["credentials"]["status"] == "awaiting_certificate" and r.json()["credentials"]["csr_pending"]
    csr = x509.load_pem_x509_csr(r.json()["csr"].encode())
    assert csr.is_signature_valid and csr.public_key().key_size == 2048
    subject = {a.oid._name: a.value for a in csr.subject}
    assert subject == {"organizationName": "Kiosco SRL", "commonName": "stalela", "serialNumber": f"CUIT {CUIT}"}
    # ARCA issues the certificate for the CSR's key; the PUT carries no key and binds it to the HSM's.
    cert, _ = make_certificate(public_key=csr.public_key())
    wrong, _ = make_certificate()
    r = await hsm_world.client.put(PATH, json=body(wrong, **custom(soap)), headers=headers)
    assert (r.status_code, r.json()["code"]) == (422, "key_mismatch")
    r = await hsm_world.client.put(PATH, json=body(cert, **custom(soap)), headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["key"] == "hsm" and not r.json()["csr_pending"]
    soap.handler = FakeWsaa()
    ticket = await service.get_ticket(hsm_world.db, hsm_world.settings, tenant_id)
    assert ticket.cuits == (CUIT,)
    if shutil.which("openssl"):
        in0 = etree.fromstring(soap.requests[0][1]).find(f".//{{{wsaa.NS}}}in0").text
        (tmp_path / "login.cms").write_bytes(base64.b64decode(in0))
        done = subprocess.run(["openssl", "cms", "-verify", "-inform", "DER", "-noverify", "-in",
                               str(tmp_path / "login.cms")], capture_output=True)
        assert done.returncode == 0 and b"<service>wsfe</service>" in done.stdout, done.stderr


# --- tickets -------------------------------------------------------------------------------------


async def _configured(world, soap) -> str:
    tenant_id, headers = await world.tenant()
    cert, key = make_certificate()
    r = await world.client.put(PATH, json=body(cert, key, **custom(soap)), headers=headers)
    assert r.status_code == 200, r.text
    return tenant_id


async def test_concurrent_callers_log_in_once_and_reuse_the_ticket(world, soap):
    tenant_id = await _configured(world, soap)
    fake = soap.handler = FakeWsaa(delay=0.3)  # slow enough that both callers miss the cache
    other = Database.from_settings(world.settings)  # a second process's connections
    try:
        first, second = await asyncio.gather(service.get_ticket(world.db, world.settings, tenant_id),
                                             service.get_ticket(other, world.settings, tenant_id))
    finally:
        await other.dispose()
    assert fake.logins == 1 and len(soap.requests) == 1
    assert first.token == second.token
    again = await service.get_ticket(world.db, world.settings, tenant_id)
    assert again.token == first.token and fake.logins == 1


async def test_a_ticket_about_to_expire_is_fetched_again(world, soap):
    tenant_id = await _configured(world, soap)
    fake = soap.handler = FakeWsaa()
    first = await service.get_ticket(world.db, world.settings, tenant_id)
    async with world.db.transaction() as s:
        await bind_tenant(s, tenant_id)
        await s.execute(update(ArcaTicket).values(expires_at=datetime.now(timezone.utc) + timedelta(minutes=2)))
    fake.issued_until = None  # expired at WSAA's side too
    second = await service.get_ticket(world.db, world.settings, tenant_id)
    assert fake.logins == 2 and second.expires_at > first.expires_at - timedelta(seconds=5)
    assert second.expires_at - datetime.now(timezone.utc) > timedelta(hours=11)


async def test_already_authenticated_reuses_the_cache_or_says_why_not(world, soap):
    tenant_id = await _configured(world, soap)
    fake = soap.handler = FakeWsaa()
    ticket = await service.get_ticket(world.db, world.settings, tenant_id)
    # Within the margin, WSAA still holding it: alreadyAuthenticated, and the cached ticket is used.
    soon = datetime.now(timezone.utc) + timedelta(minutes=2)
    async with world.db.transaction() as s:
        await bind_tenant(s, tenant_id)
        await s.execute(update(ArcaTicket).values(expires_at=soon))
    again = await service.get_ticket(world.db, world.settings, tenant_id)
    assert again.token == ticket.token and fake.logins == 1 and len(soap.requests) == 2
    # The cache lost (a process died after logging in): a clear error, not a loop of logins.
    await service.forget_ticket(world.db, tenant_id)
    with pytest.raises(TicketUnavailable, match="until it expires"):
        await service.get_ticket(world.db, world.settings, tenant_id)


async def test_the_wsfe_endpoint_carries_the_tickets_auth(world, soap):
    tenant_id = await _configured(world, soap)
    soap.handler = FakeWsaa()
    endpoint = await service.wsfe_endpoint(world.db, world.settings, tenant_id)
    assert endpoint.auth.cuit == CUIT and endpoint.auth.sign == "c2lnbg==" and endpoint.environment == "custom"
    assert endpoint.client.url.endswith("/wsfev1/service.asmx")


async def test_no_certificate_no_ticket(world):
    tenant_id, _ = await world.tenant()
    with pytest.raises(NotConfigured):
        await service.get_ticket(world.db, world.settings, tenant_id)
