"""API calls, counted where they happen: in each API process, in memory, with no database work per request.

``ApiCallMeter`` (pure ASGI middleware) adds one to the caller's tenant after every authenticated ``/v1/``
request (authentication puts the tenant in the request's state), except those the ``api_calls`` quota
marks ``UNCOUNTED`` (api_quota.py). ``api_call_metering`` flushes the counts
every ``settings.usage_flush_seconds`` and at shutdown as ``api_calls`` usage events. Each flush gets an id
of its own (``stalela:api:<process>:<n>:<tenant>``), kept until it commits, so a flush retried after a
failure (even one whose commit did happen) records nothing twice.
"""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, AsyncIterator

from starlette.types import ASGIApp, Receive, Scope, Send

from stalela.billing import usage_service
from stalela.config import Settings
from stalela.db.session import Database
from stalela.kit.ids import new_ulid
from stalela.observability.logging import get_logger
from stalela.tenancy.context import bind_platform

log = get_logger("stalela.billing")
# A request's state flag: not an API call to count (the quota's own endpoint, a call the quota refused).
UNCOUNTED = "usage_uncounted"


class ApiCallCounter:
    def __init__(self) -> None:
        self.process = new_ulid()
        self.counts: dict[str, int] = {}  # since the last flush
        # Since the process started, per tenant: calls counted, and calls whose flush committed. Their
        # difference is what the database does not know yet (the api_calls quota adds it: api_quota.py).
        self.counted: dict[str, int] = {}
        self.flushed: dict[str, int] = {}
        self.measured: dict[str, Any] = {}  # the api_calls quota's last reads of capped tenants (api_quota.py)
        self._flushes = 0
        self._pending: list[tuple[str, str, str, int, datetime]] = []

    def add(self, tenant_id: str) -> None:
        self.counts[tenant_id] = self.counts.get(tenant_id, 0) + 1
        self.counted[tenant_id] = self.counted.get(tenant_id, 0) + 1

    async def flush(self, db: Database) -> int:
        """Write what was counted (and whatever a failed flush left); returns the events recorded."""
        if self.counts:
            taken, self.counts = self.counts, {}
            self._flushes += 1
            now = usage_service.clock.now()
            self._pending += [(t, f"stalela:api:{self.process}:{self._flushes}:{t}", "api_calls", n, now)
                              for t, n in sorted(taken.items())]
        if not self._pending:
            return 0
        async with db.transaction() as session:
            await bind_platform(session)  # the rows name their tenants
            await usage_service.record_metered(session, self._pending)
        for tenant_id, _, _, units, _ in self._pending:
            self.flushed[tenant_id] = self.flushed.get(tenant_id, 0) + units
        written, self._pending = len(self._pending), []
        return written


class ApiCallMeter:
    def __init__(self, app: ASGIApp, counter: ApiCallCounter) -> None:
        self.app = app
        self.counter = counter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            if scope["type"] == "http" and scope["path"].startswith("/v1/"):
                state = scope.get("state", {})
                tenant_id = state.get("tenant_id")
                if tenant_id and not state.get(UNCOUNTED):
                    self.counter.add(tenant_id)


@asynccontextmanager
async def api_call_metering(db: Database, settings: Settings, counter: ApiCallCounter) -> AsyncIterator[None]:
    """Flush the API process's counts periodically while the block runs, and once more when it ends."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(settings.usage_flush_seconds)
            try:
                await counter.flush(db)
            except Exception:  # the database may be away: the counts wait for the next flush
                log.warning("usage_api_calls_flush_failed", exc_info=True)

    task = asyncio.create_task(loop(), name="usage-api-calls")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        try:
            await counter.flush(db)
        except Exception:
            log.warning("usage_api_calls_lost_at_shutdown", tenants=len(counter.counts), exc_info=True)
