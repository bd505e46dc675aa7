from __future__ import annotations

import asyncio
import io
import tarfile
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest

from stalela.app import create_app
from stalela.config import Settings
from stalela.outbox.dispatcher import Dispatcher
from stalela.privacy.export_clock import use_clock
from tests.conftest import OPERATOR_TOKEN, make_settings
from tests.support.invoices import sample_invoice
from tests.support.s3 import s3_server  # noqa: F401  (the fixture)


class Clock:
    """The exports' clock: the real time, plus however far the test moved it on."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


@pytest.fixture
def clock():
    fake = Clock()
    with use_clock(fake):
        yield fake


@dataclass
class World:
    """One tenant with a little of everything, on a database of its own (the outbox is pumped whole)."""

    app: Any
    client: httpx.AsyncClient
    headers: dict[str, str]
    tenant_id: str
    settings: Settings
    dispatcher: Dispatcher
    invoices: list[dict]
    secrets: list[str]  # values that must never reach an archive

    @property
    def db(self):  # noqa: ANN201
        return self.app.state.db

    async def api(self, method: str, url: str, **kw: Any) -> httpx.Response:
        kw.setdefault("headers", self.headers)
        return await self.client.request(method, url, **kw)

    async def pump(self, rounds: int = 6) -> None:
        for _ in range(rounds):
            if not await self.dispatcher.run_once():
                return

    async def until(self, export_id: str, status: str, seconds: float = 10) -> dict:
        """Pump the outbox until the export is in ``status`` (retries wait for their backoff)."""
        deadline = time.monotonic() + seconds
        while True:
            await self.pump()
            export = (await self.api("GET", f"/v1/privacy/exports/{export_id}")).json()
            if export["status"] == status or time.monotonic() > deadline:
                return export
            await asyncio.sleep(0.05)

    async def request_export(self, **body: Any) -> dict:
        r = await self.api("POST", "/v1/privacy/exports", json={"scope": "tenant", **body})
        assert r.status_code == 202, r.text
        return r.json()

    async def ready_export(self) -> dict:
        export = await self.request_export()
        await self.pump()
        r = await self.api("GET", f"/v1/privacy/exports/{export['id']}")
        assert r.status_code == 200 and r.json()["status"] == "ready", r.text
        return r.json()

    async def download(self, export: dict, **kw: Any) -> httpx.Response:
        """Through the link alone: no credentials."""
        link = urlsplit(export["download_url"])
        return await self.client.get(f"{link.path}?{link.query}", **kw)


@asynccontextmanager
async def open_world(url: str, tmp_path, **overrides: Any) -> AsyncIterator[World]:
    settings = make_settings(url, tmp_path, public_url="http://stalela.test", outbox_backoff_base_seconds=0.01,
                             outbox_backoff_cap_seconds=0.02, **overrides)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://stalela.test") as c:
            r = await c.post("/v1/tenants", json={"name": "Export SARL", "tax_id": "EX0001", "jurisdiction": "CD"},
                             headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
            assert r.status_code == 201, r.text
            root_key = r.json()["api_key"]
            headers = {"Authorization": f"Bearer {root_key}"}
            secrets = [root_key]
            outlets = [(await c.post("/v1/outlets", json={"code": code, "name": f"Shop {code}"}, headers=headers)).json()
                       for code in ("EX1", "EX2")]
            invoices = []
            for i, outlet in enumerate((outlets[0], outlets[1], outlets[0])):
                body = sample_invoice(outlet["id"], reference=f"ref-{i}-{uuid.uuid4().hex[:6]}")
                if i == 1:
                    body["buyer"] = {"type": "PM", "name": "Acheteur SARL", "tax_id": "B0000001C"}
                r = await c.post("/v1/invoices", json=body, headers=headers)
                assert r.status_code == 201, r.text
                invoices.append(r.json())
            r = await c.post(f"/v1/outlets/{outlets[0]['id']}/z-reports", headers=headers)
            assert r.status_code == 201, r.text
            r = await c.post("/v1/users", json={"email": "Marie@Example.cd", "name": "Marie", "role": "accountant",
                                                "password": "a long enough passphrase"}, headers=headers)
            assert r.status_code == 201, r.text
            secrets.append("a long enough passphrase")
            r = await c.post("/v1/api-keys", json={"name": "till", "outlet_id": outlets[1]["id"]}, headers=headers)
            assert r.status_code == 201, r.text
            secrets.append(r.json()["api_key"])
            # Disabled: no delivery is attempted (this machine reaches no webhook receiver).
            r = await c.post("/v1/webhook-endpoints", json={"url": "https://hooks.example.com/export", "enabled": False},
                             headers=headers)
            assert r.status_code == 201, r.text
            secrets.append(r.json()["secret"])
            world = World(app, c, headers, outlets[0]["tenant_id"], settings, Dispatcher(app.state.db, settings),
                          invoices, secrets)
            await world.pump()  # the sealing's own events first (the invoices' sync state settles)
            yield world


@pytest.fixture
async def world(fresh_database_url, tmp_path, clock):
    async with open_world(fresh_database_url, tmp_path) as w:
        yield w


def members(archive: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        return tar.getmembers()


def extract(archive: bytes, into) -> Any:  # noqa: ANN001
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        tar.extractall(into, filter="data")
        (base,) = {m.name.split("/")[0] for m in tar.getmembers()}
    return into / base
