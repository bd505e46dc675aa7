"""The connectors end to end: our app served on a loopback port in the test's loop (so its database can be
looked at), a platform simulator in a thread delivering real signed webhooks to it, and the outbox pumped."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import uvicorn

from stalela.connectors.simulator import MarketplaceSimulator
from tests.support.server import free_port

SIM_SECRET = "shpss_e2e-secret"


@contextlib.asynccontextmanager
async def served(app: Any, port: int | None = None) -> AsyncIterator[str]:
    """The app (its lifespan already entered) on a loopback port, in this event loop."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


class Sim:
    """A platform simulator and its control API (``/_sim``), called from async tests."""

    def __init__(self, platform: str, **options: Any) -> None:
        self.server = MarketplaceSimulator(platform, **{"secret": SIM_SECRET, **options}).start()
        self.control = httpx.AsyncClient(base_url=self.server.url, timeout=30)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def credentials(self) -> dict:
        return dict(self.server.sim.default_credentials)

    async def call(self, method: str, path: str, **kw: Any) -> Any:
        r = await self.control.request(method, f"/_sim{path}", **kw)
        assert r.status_code < 300, (path, r.status_code, r.text)
        return r.json() if r.content else None

    async def settled(self, timeout: float = 60.0) -> None:
        """Every delivery sent (none pending or held in flight)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            status = await self.call("GET", "/status")
            if not status["pending"] and not status["held"]:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"the simulator still has deliveries in flight: {status}")

    async def close(self) -> None:
        await self.control.aclose()
        await asyncio.to_thread(self.server.stop)


async def pump_until_quiet(shop: Any, rounds: int = 400) -> None:
    """Run the outbox until a pass finds nothing due (handlers that call the platform included)."""
    idle = 0
    for _ in range(rounds):
        handled = await shop.dispatcher.run_once()
        idle = idle + 1 if not handled else 0
        if idle >= 2:
            return
        if not handled:
            await asyncio.sleep(0.05)
    raise AssertionError("the outbox never went quiet")
