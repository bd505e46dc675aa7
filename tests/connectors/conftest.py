"""A world for the connector tests: the app (SQLite and PostgreSQL), a tenant with an outlet, helpers to connect
a store, post a platform's signed webhook and pump the outbox."""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any, AsyncIterator

import httpx
import pytest

from stalela.connectors import signatures
from stalela.outbox.dispatcher import Dispatcher
from tests.conftest import OPERATOR_TOKEN, make_settings


@dataclass
class Shop:
    app: Any
    client: httpx.AsyncClient
    headers: dict[str, str]
    tenant: dict
    outlet: str
    dispatcher: Dispatcher

    @property
    def settings(self) -> Any:
        return self.app.state.settings

    @property
    def db(self) -> Any:
        return self.app.state.db

    async def connect(self, platform: str, credentials: dict[str, str], *, shop: str | None = None,
                      api_base_url: str = "http://127.0.0.1:9", **extra: Any) -> dict:
        body = {"platform": platform, "shop": shop or f"shop-{uuid.uuid4().hex[:8]}", "outlet_id": self.outlet,
                "credentials": credentials, "api_base_url": api_base_url, **extra}
        r = await self.client.post("/v1/connections", json=body, headers=self.headers)
        assert r.status_code == 201, r.text
        return r.json()

    async def post_webhook(self, connection: dict, body: bytes, headers: dict[str, str], *, secret: str | None = None,
                           ) -> httpx.Response:
        headers = dict(headers)
        if secret is not None:
            headers[signatures.SIGNATURE_HEADERS[connection["platform"]]] = signatures.expected(
                connection["platform"], secret, body)
        return await self.client.post(connection["webhook_url"], content=body,
                                      headers={"Content-Type": "application/json", **headers})

    async def pump(self, rounds: int = 6) -> None:
        for _ in range(rounds):
            if not await self.dispatcher.run_once():
                break

    async def orders(self, connection: dict, **params: Any) -> list[dict]:
        r = await self.client.get(f"/v1/connections/{connection['id']}/orders", params={"limit": 100, **params},
                                  headers=self.headers)
        assert r.status_code == 200, r.text
        return r.json()["data"]


async def open_shop(url: str, tmp_path, jurisdiction: str = "CD", **overrides: Any) -> AsyncIterator[Shop]:
    from stalela.app import create_app

    settings = make_settings(url, tmp_path, **{"webhooks_allow_private": True, "outbox_max_attempts": 3, **overrides})
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            operator = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
            if jurisdiction == "AR":
                tenant_body = {"name": "Tienda SRL", "tax_id": "30-71234567-1", "jurisdiction": "AR",
                               "ar": {"vat_condition": "responsable_inscripto"}}
                outlet_body = {"code": "WEB", "name": "Tienda online", "pos_number": 7}
            else:
                tenant_body = {"name": "Kin Market SARL", "tax_id": "A1234567B", "jurisdiction": "CD"}
                outlet_body = {"code": "WEB", "name": "Boutique en ligne"}
            r = await client.post("/v1/tenants", json=tenant_body, headers=operator)
            assert r.status_code == 201, r.text
            tenant, headers = r.json()["tenant"], {"Authorization": f"Bearer {r.json()['api_key']}"}
            r = await client.post("/v1/outlets", json=outlet_body, headers=headers)
            assert r.status_code == 201, r.text
            outlet = r.json()["id"]
            yield Shop(app, client, headers, tenant, outlet, Dispatcher(app.state.db, settings))


@pytest.fixture
async def shop(database_url, tmp_path) -> AsyncIterator[Shop]:
    async for world in open_shop(database_url, tmp_path):
        yield world


@pytest.fixture
async def ar_shop(database_url, tmp_path) -> AsyncIterator[Shop]:
    async for world in open_shop(database_url, tmp_path, jurisdiction="AR"):
        yield world


def shopify_headers(topic: str, event_id: str | None = None) -> dict[str, str]:
    return {"X-Shopify-Topic": topic, "X-Shopify-Event-Id": event_id or str(uuid.uuid4()),
            "X-Shopify-Shop-Domain": "kin-market.myshopify.com", "X-Shopify-API-Version": "2025-01"}


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
