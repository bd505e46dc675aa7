"""A connection's secrets: sealed under the master key, bound to the connection's id, opened only to call
the platform or to check a webhook's signature; and the OAuth steps that mint and refresh tokens.

Mercado Libre hands out a new refresh token on every refresh and kills the old one, so two refreshes of
one seller at once would leave one of them holding a dead token for good. A refresh therefore runs with the
connection's row locked (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite has one writer at a time), and
looks again after taking the lock: if another process refreshed meanwhile, its token is used instead.
"""
from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from stalela.config import Settings
from stalela.connectors.clients.base import PlatformError, call, loads
from stalela.connectors.models import Connection
from stalela.connectors.repository import ConnectionRepository
from stalela.db.base import utcnow
from stalela.db.session import Database
from stalela.kit.secretbox import open_secret, seal_secret
from stalela.tenancy.context import bind_platform

REFRESH_MARGIN = timedelta(minutes=5)  # refresh a token this long before it expires, not after a 401
DEFAULT_BASE = {"shopify": "https://{shop}", "mercadolibre": "https://api.mercadolibre.com",
                "tiendanube": "https://api.tiendanube.com", "woocommerce": "{shop}"}
TIENDANUBE_OAUTH = "https://www.tiendanube.com"


def _context(connection_id: str) -> str:
    return f"connection:{connection_id}"


def seal(settings: Settings, connection_id: str, secrets: dict[str, Any]) -> bytes:
    return seal_secret(settings, json.dumps(secrets, sort_keys=True), _context(connection_id))


def read(settings: Settings, connection: Connection) -> dict[str, Any]:
    return json.loads(open_secret(settings, connection.credentials, _context(connection.id)))


def webhook_secret(platform: str, secrets: dict[str, Any]) -> str | None:
    """The key a platform signs its webhooks with (Shopify: the app's client secret or the shop's signing
    key; Tienda Nube: the app secret; WooCommerce: the webhook's secret). Mercado Libre signs nothing."""
    return {"shopify": secrets.get("webhook_secret") or secrets.get("client_secret"),
            "tiendanube": secrets.get("app_secret") or secrets.get("client_secret"),
            "woocommerce": secrets.get("webhook_secret")}.get(platform)


async def exchange_code(platform: str, base_url: str, secrets: dict[str, str], allow_private: bool,
                        custom_base: bool) -> tuple[dict[str, Any], int | None]:
    """Trade an OAuth authorisation code for tokens: (secrets to keep, seconds the access token lasts)."""
    if "code" not in secrets:
        return dict(secrets), None
    kept = {k: v for k, v in secrets.items() if k not in ("code", "redirect_uri")}
    if platform == "shopify":
        r = await call(allow_private, "POST", f"{base_url}/admin/oauth/access_token",
                       json={"client_id": secrets["client_id"], "client_secret": secrets["client_secret"],
                             "code": secrets["code"]})
        return {**kept, "access_token": loads(r.content)["access_token"]}, None
    if platform == "tiendanube":
        oauth = base_url if custom_base else TIENDANUBE_OAUTH
        r = await call(allow_private, "POST", f"{oauth}/apps/authorize/token",
                       json={"client_id": secrets["client_id"], "client_secret": secrets["client_secret"],
                             "grant_type": "authorization_code", "code": secrets["code"]})
        return {**kept, "access_token": loads(r.content)["access_token"]}, None
    r = await call(allow_private, "POST", f"{base_url}/oauth/token",
                   data={"grant_type": "authorization_code", "client_id": secrets["client_id"],
                         "client_secret": secrets["client_secret"], "code": secrets["code"],
                         "redirect_uri": secrets.get("redirect_uri", "")})
    answer = loads(r.content)
    return ({**kept, "access_token": answer["access_token"], "refresh_token": answer["refresh_token"]},
            int(answer.get("expires_in") or 21600))


class TokenSource:
    """The access token of one Mercado Libre connection, refreshed when due (or when told, after a 401)."""

    def __init__(self, db: Database, settings: Settings, connection: Connection) -> None:
        self.db, self.settings = db, settings
        self.tenant_id, self.connection_id = connection.tenant_id, connection.id
        self.secrets = read(settings, connection)
        self.expires_at = connection.token_expires_at

    async def __call__(self, force: bool) -> str:
        token = self.secrets.get("access_token")
        if token and not force and self.expires_at and self.expires_at - REFRESH_MARGIN > utcnow():
            return token
        return await self._refresh(stale=token if force else None)

    async def _refresh(self, stale: str | None) -> str:
        async with self.db.transaction() as session:
            await bind_platform(session)
            connection = await ConnectionRepository(session).get(self.connection_id, lock=True)
            if connection is None:
                raise PlatformError("the connection is gone", code="connection_gone")
            secrets = read(self.settings, connection)
            fresh = secrets.get("access_token")
            if fresh and fresh != stale and connection.token_expires_at \
                    and connection.token_expires_at - REFRESH_MARGIN > utcnow():
                self.secrets, self.expires_at = secrets, connection.token_expires_at  # another process refreshed
                return fresh
            r = await call(self.settings.webhooks_allow_private, "POST", f"{connection.api_base_url}/oauth/token",
                           data={"grant_type": "refresh_token", "client_id": secrets["client_id"],
                                 "client_secret": secrets["client_secret"],
                                 "refresh_token": secrets["refresh_token"]})
            answer = loads(r.content)
            secrets.update(access_token=answer["access_token"],
                           refresh_token=answer.get("refresh_token") or secrets["refresh_token"])
            connection.credentials = seal(self.settings, connection.id, secrets)
            connection.token_expires_at = utcnow() + timedelta(seconds=int(answer.get("expires_in") or 21600))
            connection.updated_at = utcnow()
            await session.flush()
            self.secrets, self.expires_at = secrets, connection.token_expires_at
            return secrets["access_token"]
