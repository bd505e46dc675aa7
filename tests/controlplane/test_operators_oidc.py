"""Operators' single sign-on against a real OpenID Connect provider on loopback (oidc-provider-mock:
Flask + Authlib, written apart from our client): the whole flow, and every refusal a clear 4xx."""
from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from stalela.controlplane import oidc
from tests.conftest import make_settings
from tests.controlplane.conftest import unique_email
from tests.dashboard.conftest import Browser

oidc_provider_mock = pytest.importorskip("oidc_provider_mock", reason="the test extras install oidc-provider-mock")

CLIENT_ID, CLIENT_SECRET = "stalela-ops", "client-secret-for-tests"


@pytest.fixture(scope="module")
def provider():
    with oidc_provider_mock.run_server_in_thread(require_nonce=True) as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture(scope="module")
def expired_provider():
    """Its ID tokens expire five minutes before they are issued: past any clock-skew leeway."""
    with oidc_provider_mock.run_server_in_thread(access_token_max_age=timedelta(seconds=-300)) as server:
        yield f"http://localhost:{server.server_port}"


def _settings(database_url, tmp_path, issuer: str):  # noqa: ANN001, ANN202
    return make_settings(database_url, tmp_path, argon2_time_cost=1, argon2_memory_kib=1024, argon2_parallelism=1,
                         oidc_issuer=issuer, oidc_client_id=CLIENT_ID, oidc_client_secret=CLIENT_SECRET,
                         public_url="http://test")


@pytest.fixture
def settings(database_url, tmp_path, provider):
    return _settings(database_url, tmp_path, provider)


def identity(issuer: str, sub: str, **claims) -> None:  # noqa: ANN003
    r = httpx.put(f"{issuer}/users/{sub}", json=claims)
    assert r.status_code == 204, r.text


async def start(app) -> tuple[Browser, str]:  # noqa: ANN001
    """A browser that asked to sign in with SSO, and the provider's authorization URL it was sent to."""
    b = Browser(app)
    assert 'href="/ops/oidc/start"' in (await b.get("/ops/login")).text
    r = await b.get("/ops/oidc/start")
    assert r.status_code == 303
    return b, r.headers["location"]


def authorize(url: str, sub: str) -> dict[str, str]:
    """The person at the provider's sign-in form; returns the query of the redirect back to us."""
    r = httpx.post(url, data={"sub": sub})
    assert r.status_code == 302, r.text[:300]
    back = urlsplit(r.headers["location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == "http://test/ops/oidc/callback"
    return {k: v[0] for k, v in parse_qs(back.query).items()}


async def callback(b: Browser, answer: dict[str, str]) -> httpx.Response:
    return await b.get("/ops/oidc/callback", params=answer)


async def last_entry(client, operator_headers) -> dict:  # noqa: ANN001
    return (await client.get("/v1/ops/audit?limit=1", headers=operator_headers)).json()["data"][0]


async def test_sign_in_by_verified_email_links_the_subject(app, client, operator_headers, provider, new_operator):
    op = await new_operator("support", who="sso", password=None)
    sub = "sub-" + op["id"]
    identity(provider, sub, email=op["email"].upper(), email_verified=True)
    b, url = await start(app)
    query = parse_qs(urlsplit(url).query)
    assert query["client_id"] == [CLIENT_ID] and query["code_challenge_method"] == ["S256"]
    assert query["redirect_uri"] == ["http://test/ops/oidc/callback"] and "nonce" in query and "state" in query
    r = await callback(b, authorize(url, sub))
    assert r.status_code == 200 and 'http-equiv="refresh"' in r.text
    page = await b.get("/ops")
    assert page.status_code == 200 and op["email"] in page.text and ">support<" in page.text
    linked = (await client.get(f"/v1/operators/{op['id']}", headers=operator_headers)).json()
    assert (linked["oidc_issuer"], linked["oidc_subject"]) == (provider, sub)
    entry = await last_entry(client, operator_headers)
    assert (entry["actor"], entry["action"], entry["details"]) == (f"operator:{op['id']}", "operator.login",
                                                                   {"method": "oidc"})
    # Linked: the subject signs in although the provider now says another (unverified) address.
    identity(provider, sub, email="changed@elsewhere.example", email_verified=False)
    b2, url2 = await start(app)
    assert (await callback(b2, authorize(url2, sub))).status_code == 200
    # Another identity claiming the linked operator's e-mail does not take the account over.
    identity(provider, sub + "-impostor", email=op["email"], email_verified=True)
    b3, url3 = await start(app)
    assert (await callback(b3, authorize(url3, sub + "-impostor"))).status_code == 403
    for browser in (b, b2, b3):
        await browser.aclose()


async def test_unknown_or_unverified_identities_are_refused(app, client, operator_headers, provider, new_operator):
    stranger = "stranger-" + unique_email("x")
    identity(provider, stranger, email=unique_email("stranger"), email_verified=True)
    b, url = await start(app)
    r = await callback(b, authorize(url, stranger))
    assert r.status_code == 403 and "not an active operator" in r.text
    entry = await last_entry(client, operator_headers)
    assert (entry["action"], entry["details"]) == ("operator.login_failed",
                                                   {"method": "oidc", "code": "oidc_not_an_operator"})
    assert (await b.get("/ops")).status_code == 303  # no session
    op = await new_operator("platform_admin", who="unverified")
    identity(provider, "unverified-" + op["id"], email=op["email"], email_verified=False)
    b2, url2 = await start(app)
    assert (await callback(b2, authorize(url2, "unverified-" + op["id"]))).status_code == 403
    assert (await client.get(f"/v1/operators/{op['id']}", headers=operator_headers)).json()["oidc_subject"] is None
    for browser in (b, b2):
        await browser.aclose()


async def test_a_forged_or_missing_state_is_refused(app, client, operator_headers, provider, new_operator):
    op = await new_operator("support", who="state")
    identity(provider, "state-" + op["id"], email=op["email"], email_verified=True)
    b, url = await start(app)
    answer = authorize(url, "state-" + op["id"])
    forged = await callback(b, answer | {"state": "forged-state"})
    assert forged.status_code == 401 and "state" in forged.text
    assert (await last_entry(client, operator_headers))["details"]["code"] == "oidc_state_mismatch"
    stranger = Browser(app)  # the right answer in a browser that never started this sign-in
    assert (await callback(stranger, answer)).status_code == 401
    assert (await last_entry(client, operator_headers))["details"]["code"] == "oidc_state_invalid"
    denied = await callback(b, {"state": answer["state"], "error": "access_denied"})
    assert denied.status_code == 401  # the flow cookie was spent by the forged answer
    for browser in (b, stranger):
        await browser.aclose()


async def test_an_id_token_for_another_sign_in_is_refused_by_its_nonce(app, client, operator_headers, provider,
                                                                       new_operator):
    op = await new_operator("support", who="nonce")
    identity(provider, "nonce-" + op["id"], email=op["email"], email_verified=True)
    victim, victim_url = await start(app)
    attacker, attacker_url = await start(app)
    stolen = authorize(attacker_url, "nonce-" + op["id"])  # a code from the attacker's own attempt
    victim_state = parse_qs(urlsplit(victim_url).query)["state"][0]
    r = await callback(victim, {"state": victim_state, "code": stolen["code"]})
    assert r.status_code == 401 and "nonce" in r.text
    assert (await last_entry(client, operator_headers))["details"]["code"] == "oidc_nonce_mismatch"
    assert (await victim.get("/ops")).status_code == 303
    for browser in (victim, attacker):
        await browser.aclose()


async def test_an_id_token_issued_to_another_client_is_refused(settings, provider):
    """The provider's real token for another client, checked by our verifier."""
    async with httpx.AsyncClient() as http:
        found = await oidc.provider(settings, http)
        r = httpx.post(f"{found.authorization_endpoint}?response_type=code&client_id=another-app&scope=openid"
                       f"&redirect_uri=http://other.example/cb&state=s&nonce=n1", data={"sub": "someone"})
        code = parse_qs(urlsplit(r.headers["location"]).query)["code"][0]
        token = httpx.post(found.token_endpoint, auth=("another-app", "x"),
                           data={"grant_type": "authorization_code", "code": code,
                                 "redirect_uri": "http://other.example/cb"}).json()["id_token"]
        with pytest.raises(oidc.OidcRefused) as refused:
            await oidc.verify_id_token(settings, found, http, token, "n1")
        assert refused.value.code == "oidc_wrong_audience" and refused.value.status == 401
        with pytest.raises(oidc.OidcRefused) as tampered:
            await oidc.verify_id_token(settings, found, http, token[:-4] + "AAAA", "n1")
        assert tampered.value.code in ("oidc_token_invalid", "oidc_wrong_audience")


async def test_an_expired_id_token_is_refused(database_url, tmp_path, expired_provider):
    from stalela.app import create_app

    settings = _settings(database_url, tmp_path, expired_provider)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        identity(expired_provider, "late", email=unique_email("late"), email_verified=True)
        b, url = await start(application)
        r = await callback(b, authorize(url, "late"))
        assert r.status_code == 401 and "the ID token has expired" in r.text
        await b.aclose()


async def test_sso_is_off_until_configured(database_url, tmp_path):
    from stalela.app import create_app

    application = create_app(make_settings(database_url, tmp_path))
    async with application.router.lifespan_context(application):
        b = Browser(application)
        assert "/ops/oidc/start" not in (await b.get("/ops/login")).text
        assert (await b.get("/ops/oidc/start")).status_code == 404
        assert (await b.get("/ops/oidc/callback?state=a&code=b")).status_code == 404
        await b.aclose()


def test_the_redirect_uri_to_register():
    settings = make_settings("sqlite:///unused.db", "/tmp", public_url="https://fiscal.example.cd/")
    assert oidc.redirect_uri(settings) == "https://fiscal.example.cd/ops/oidc/callback"
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", oidc._b64(b"\0" * 32))
