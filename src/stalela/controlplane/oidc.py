"""OpenID Connect sign-in for operators: the authorization code flow with PKCE, state and nonce.

Discovery and the JWKS come from the issuer (cached per process; the JWKS is read again when a token
names a key it does not hold, which is how providers rotate). The ID token is verified with PyJWT
(signature against the JWKS, ``iss``, ``aud``, ``exp``, ``iat``) and its ``nonce`` against the one
this browser was given. PyJWT and httpx are already the project's dependencies; Authlib's client would
add a second JOSE stack for the same four checks.

What the flow keeps between the redirect and the callback (state, nonce, PKCE verifier, expiry) lives
in a cookie sealed with AES-GCM under the master key (``kit.secretbox``): nothing is stored server side,
and a cookie cannot be read, forged or moved to another purpose.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt

from stalela.config import Settings
from stalela.errors import BadRequest, ServiceUnavailable, StalelaError, Unauthorized
from stalela.kit.secretbox import open_secret, seal_secret

COOKIE_CONTEXT = "ops-oidc-login"
FLOW_SECONDS = 600  # from the redirect to the callback
LEEWAY_SECONDS = 60  # clock skew between us and the provider
DISCOVERY_SECONDS = 3600
ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]
CALLBACK_PATH = "/ops/oidc/callback"


class OidcRefused(Unauthorized):
    code = "oidc_refused"
    title = "Single sign-on refused"


@dataclass
class Provider:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    fetched: float
    keys: dict[str, Any] | None = None


_providers: dict[str, Provider] = {}


def redirect_uri(settings: Settings) -> str:
    return settings.effective_public_url + CALLBACK_PATH


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def _get_json(http: httpx.AsyncClient, url: str) -> dict[str, Any]:
    try:
        response = await http.get(url)
        response.raise_for_status()
        return response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise ServiceUnavailable(f"the identity provider did not answer ({type(exc).__name__})",
                                 code="oidc_provider_unavailable") from None


async def provider(settings: Settings, http: httpx.AsyncClient) -> Provider:
    issuer = (settings.oidc_issuer or "").rstrip("/")
    known = _providers.get(issuer)
    if known is not None and time.monotonic() - known.fetched < DISCOVERY_SECONDS:
        return known
    meta = await _get_json(http, issuer + "/.well-known/openid-configuration")
    if str(meta.get("issuer", "")).rstrip("/") != issuer:
        # OpenID Connect Discovery 4.3: the document must name the issuer it was fetched from.
        raise ServiceUnavailable("the identity provider's discovery names another issuer", code="oidc_issuer_mismatch")
    try:
        found = Provider(issuer=meta["issuer"], authorization_endpoint=meta["authorization_endpoint"],
                         token_endpoint=meta["token_endpoint"], jwks_uri=meta["jwks_uri"], fetched=time.monotonic())
    except KeyError as exc:
        raise ServiceUnavailable(f"the identity provider's discovery lacks {exc.args[0]}",
                                 code="oidc_provider_unavailable") from None
    _providers[issuer] = found
    return found


def begin(settings: Settings, found: Provider) -> tuple[str, str]:
    """(the provider's authorization URL, the sealed cookie that remembers this attempt)."""
    state, nonce, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48)
    challenge = _b64(hashlib.sha256(verifier.encode()).digest())
    query = urlencode({"response_type": "code", "client_id": settings.oidc_client_id, "scope": "openid email profile",
                       "redirect_uri": redirect_uri(settings), "state": state, "nonce": nonce,
                       "code_challenge": challenge, "code_challenge_method": "S256"})
    flow = {"state": state, "nonce": nonce, "verifier": verifier, "exp": int(time.time()) + FLOW_SECONDS}
    cookie = _b64(seal_secret(settings, json.dumps(flow), COOKIE_CONTEXT))
    separator = "&" if "?" in found.authorization_endpoint else "?"
    return f"{found.authorization_endpoint}{separator}{query}", cookie


def _open_flow(settings: Settings, cookie: str) -> dict[str, Any]:
    try:
        blob = base64.urlsafe_b64decode(cookie + "=" * (-len(cookie) % 4))
        flow = json.loads(open_secret(settings, blob, COOKIE_CONTEXT))
    except (ValueError, StalelaError):
        raise OidcRefused("the sign-in attempt is unknown or was tampered with; start again",
                          code="oidc_state_invalid") from None
    if flow.get("exp", 0) < time.time():
        raise OidcRefused("the sign-in attempt expired; start again", code="oidc_state_expired")
    return flow


async def _key_for(found: Provider, http: httpx.AsyncClient, kid: str | None) -> Any:
    for attempt in range(2):
        if found.keys is None or attempt:
            found.keys = await _get_json(http, found.jwks_uri)
        try:
            keys = jwt.PyJWKSet.from_dict(found.keys).keys
        except jwt.PyJWTError:
            raise ServiceUnavailable("the identity provider's JWKS is unusable", code="oidc_provider_unavailable") from None
        matching = [k for k in keys if kid is None or k.key_id == kid]
        if matching:
            return matching[0]
    raise OidcRefused("the ID token is signed by a key the provider does not publish", code="oidc_token_invalid")


async def verify_id_token(settings: Settings, found: Provider, http: httpx.AsyncClient, token: str,
                          nonce: str) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise OidcRefused("the ID token is malformed", code="oidc_token_invalid") from None
    key = await _key_for(found, http, header.get("kid"))
    try:
        claims = jwt.decode(token, key=key.key, algorithms=ALGORITHMS, audience=settings.oidc_client_id,
                            issuer=found.issuer, leeway=LEEWAY_SECONDS,
                            options={"require": ["iss", "aud", "exp", "iat", "sub"]})
    except jwt.InvalidAudienceError:
        raise OidcRefused("the ID token was issued to another client", code="oidc_wrong_audience") from None
    except jwt.ExpiredSignatureError:
        raise OidcRefused("the ID token has expired", code="oidc_token_expired") from None
    except jwt.InvalidIssuerError:
        raise OidcRefused("the ID token comes from another issuer", code="oidc_wrong_issuer") from None
    except jwt.PyJWTError as exc:
        raise OidcRefused(f"the ID token is invalid ({type(exc).__name__})", code="oidc_token_invalid") from None
    if claims.get("azp") not in (None, settings.oidc_client_id):
        raise OidcRefused("the ID token was issued to another client", code="oidc_wrong_audience")
    if not hmac.compare_digest(str(claims.get("nonce", "")).encode(), nonce.encode()):
        raise OidcRefused("the ID token does not answer this sign-in attempt (nonce)", code="oidc_nonce_mismatch")
    return claims


async def complete(settings: Settings, http: httpx.AsyncClient, cookie: str, params: dict[str, str]) -> dict[str, Any]:
    """The verified ID token's claims for the provider's redirect back (``params``: its query)."""
    flow = _open_flow(settings, cookie)
    if not hmac.compare_digest(params.get("state", "").encode(), flow["state"].encode()):
        raise OidcRefused("the answer does not belong to this sign-in attempt (state)", code="oidc_state_mismatch")
    if params.get("error"):
        raise OidcRefused(f"the identity provider refused: {params['error'][:100]}", code="oidc_denied")
    code = params.get("code", "")
    if not code or len(code) > 2048:
        raise BadRequest("the identity provider's answer has no code", code="oidc_code_missing")
    found = await provider(settings, http)
    secret = settings.oidc_client_secret.get_secret_value() if settings.oidc_client_secret else ""
    try:
        response = await http.post(found.token_endpoint, auth=(settings.oidc_client_id or "", secret),
                                   data={"grant_type": "authorization_code", "code": code,
                                         "redirect_uri": redirect_uri(settings), "code_verifier": flow["verifier"]})
    except httpx.HTTPError as exc:
        raise ServiceUnavailable(f"the identity provider did not answer ({type(exc).__name__})",
                                 code="oidc_provider_unavailable") from None
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200 or not isinstance(body, dict) or not body.get("id_token"):
        reason = body.get("error", response.status_code) if isinstance(body, dict) else response.status_code
        raise OidcRefused(f"the identity provider refused the code ({reason})", code="oidc_token_exchange_failed")
    claims = await verify_id_token(settings, found, http, str(body["id_token"]), flow["nonce"])
    return claims | {"iss": found.issuer}
