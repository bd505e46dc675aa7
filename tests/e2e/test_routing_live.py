"""Seal routing in a real `stalela serve --workers 2` on PostgreSQL, to the API processes themselves
(`--sealers 0`) or to a sealer process (the default): seals reaching either API process are sealed by
their tenant's owner (the metric says they were handed over), every chain is exact, and a process
killed under load (an API process, or the sealer) costs no seal: retries with the same
Idempotency-Key get one invoice each."""
from __future__ import annotations

import asyncio
import time
import os
import re
import signal
import uuid

import httpx

from tests.conftest import OPERATOR_TOKEN
from tests.support.invoices import sample_invoice
import pytest

from tests.support.server import api_worker_pids, sealer_pids, start_server
from tests.support.verify import check_chain

METRICS_TOKEN = "routing-metrics-token"


async def _tenant(c: httpx.AsyncClient, n: int) -> tuple[dict, dict]:
    op = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
    r = await c.post("/v1/tenants", json={"name": f"Route {n}", "tax_id": f"R{n}", "jurisdiction": "CD"}, headers=op)
    assert r.status_code == 201, r.text
    key = {"Authorization": f"Bearer {r.json()['api_key']}"}
    outlet = (await c.post("/v1/outlets", json={"code": f"R{n}", "name": "Till"}, headers=key)).json()
    return key, outlet


async def _seal_with_retries(base: str, key: dict, outlet: dict, count: int) -> list[dict]:
    """``count`` invoices on fresh connections, each retried with its own key until it gets a 201."""
    sealed = []
    for _ in range(count):
        idem = {**key, "Idempotency-Key": uuid.uuid4().hex}
        for attempt in range(40):
            try:
                async with httpx.AsyncClient(base_url=base, timeout=30) as c:  # a new connection: any worker
                    r = await c.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers=idem)
            except httpx.TransportError:
                await asyncio.sleep(0.25)
                continue
            if r.status_code == 201:
                sealed.append(r.json())
                break
            assert r.status_code == 503, r.text  # a worker going away: retry with the same key
            await asyncio.sleep(0.25)
        else:
            raise AssertionError("never sealed")
    return sealed


_KEYS: list = []  # the first tenant's key and outlet, for the seals after the load


def _routed(base: str) -> dict[str, float]:
    text = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).text
    return {m[0]: float(m[1]) for m in re.findall(r'^seals_routed_total\{outcome="(\w+)"\} (\S+)$', text, re.M)}


@pytest.mark.parametrize("sealers, victim", [(0, "api"), (1, "sealer")])
def test_seals_are_routed_to_their_owner_and_a_killed_process_loses_none(request, tmp_path, sealers, victim):
    url = request.getfixturevalue("_postgres_url")
    server = start_server({"STALELA_DATABASE_URL": url, "STALELA_OPERATOR_TOKEN": OPERATOR_TOKEN,
                           "STALELA_METRICS_TOKEN": METRICS_TOKEN}, tmp_path / "var", workers=2, sealers=sealers)
    try:
        async def run() -> list[list[dict]]:
            async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as c:
                tenants = [await _tenant(c, n) for n in range(3)]
            _KEYS[:] = tenants[0]

            async def load(key: dict, outlet: dict) -> list[dict]:
                parts = await asyncio.gather(*[_seal_with_retries(server.base_url, key, outlet, 12) for _ in range(5)])
                return [inv for part in parts for inv in part]

            async def kill_one() -> None:
                await asyncio.sleep(1.0)
                master = server.process.pid
                pids = api_worker_pids(master) if victim == "api" else sealer_pids(master)
                os.kill(pids[0], signal.SIGKILL)  # uvicorn's master, or the supervisor, starts another

            results = await asyncio.gather(*[load(k, o) for k, o in tenants], kill_one())
            return results[:-1]

        results = asyncio.run(run())
        for invoices in results:
            assert len(invoices) == 60 and len({i["id"] for i in invoices}) == 60
            check_chain(invoices)  # counters exactly 1..60 per outlet, chained, signed
        # Routing happened: a seal that reached a process not owning its tenant was handed to the owner. On a
        # loaded machine the whole load may have run while one process was down (the killed one restarting),
        # with nobody to hand over to; then more seals, both processes up, show it (bounded).
        routed = _routed(server.base_url)
        deadline = time.monotonic() + 60
        while not routed.get("handed_over") and time.monotonic() < deadline:
            if len(api_worker_pids(server.process.pid)) == 2:
                asyncio.run(_seal_with_retries(server.base_url, _KEYS[0], _KEYS[1], 6))
            else:
                time.sleep(0.5)
            routed = _routed(server.base_url)
        assert routed.get("handed_over", 0) > 0, routed
    finally:
        server.stop()
