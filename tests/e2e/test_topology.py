"""`stalela serve` supervises its background processes (docs/operations.md, "Processes").

With the defaults one `stalela worker` process runs beside the API: it syncs sealed invoices with the
DGI simulator (the API process does no background work), writes its metrics where the API's /metrics
reads them, is restarted after a `kill -9`, and stops with the master: SIGTERM ends every process
within the grace, SIGKILL of the master ends them through their lifeline. `--background 0` keeps the
old shape, the work inside the API process; `--background 2` starts two.
"""
from __future__ import annotations

import asyncio
import os
import signal
import time

import httpx
import pytest

from stalela import supervisor
from tests.conftest import OPERATOR_TOKEN
from tests.observability.test_metrics import scrape_text, value
from tests.support.invoices import sample_invoice
from tests.support.server import (api_worker_pids, background_pids, child_pids, is_alive, sealer_pids,
                                  start_server)
from tests.support.simulator import start_simulator

pytestmark = pytest.mark.e2e
OP = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
METRICS_TOKEN = "topology-metrics-token-1234"
SYNC = "authority.tasks.sync_invoice"
NIM, DEVICE_TOKEN = "TOPO1", "topo-token"


def _env(database_url: str) -> dict[str, str]:
    return {"STALELA_DATABASE_URL": database_url, "STALELA_OPERATOR_TOKEN": OPERATOR_TOKEN,
            "STALELA_METRICS_TOKEN": METRICS_TOKEN, "STALELA_METRICS_CACHE_SECONDS": "0",
            "STALELA_OUTBOX_POLL_SECONDS": "0.1", "STALELA_LOG_LEVEL": "INFO",
            "STALELA_WEBHOOKS_ALLOW_PRIVATE": "true"}  # the simulator listens on loopback


def _wait(predicate, what: str, timeout: float = 60.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _world(c: httpx.Client, sim_url: str) -> tuple[dict[str, str], str]:
    r = c.post("/v1/tenants", json={"name": "Topology SARL", "tax_id": "TP1", "jurisdiction": "CD"}, headers=OP)
    assert r.status_code == 201, r.text
    key = {"Authorization": f"Bearer {r.json()['api_key']}"}
    outlet = c.post("/v1/outlets", json={"code": "TP", "name": "Topology"}, headers=key).json()
    r = c.put(f"/v1/outlets/{outlet['id']}/authority-device",
              json={"nim": NIM, "base_url": sim_url, "token": DEVICE_TOKEN}, headers=key)
    assert r.status_code == 200, r.text
    return key, outlet["id"]


def _seal(base_url: str, key: dict[str, str], outlet: str, *, clients: int, each: int) -> None:
    """Light concurrent load: the API writes while the background process writes its sync results."""
    async def run() -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as c:
            async def client() -> None:
                for _ in range(each):
                    r = await c.post("/v1/invoices", json=sample_invoice(outlet), headers=key)
                    assert r.status_code == 201, r.text
            await asyncio.gather(*[client() for _ in range(clients)])
    asyncio.run(run())


def _acknowledged(c: httpx.Client, key: dict[str, str]) -> int:
    return sum(o["acknowledged"] for o in c.get("/v1/sync/status", headers=key).json()["outlets"])


def _handled(c: httpx.Client) -> float | None:
    scraped = scrape_text(c.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).text)
    return value(scraped, "outbox_handled_total", topic="invoice.sealed", handler=SYNC, result="ok")


def _handled_by(metrics_dir, pid: int) -> float:  # noqa: ANN001
    """The invoices one process synced, as it wrote them into its own file."""
    from prometheus_client.multiprocess import MultiProcessCollector

    total = 0.0
    for path in metrics_dir.glob(f"counter_{pid}.db"):
        for metric in MultiProcessCollector.merge([str(path)], accumulate=True):
            total += sum(s.value for s in metric.samples if s.name == "outbox_handled_total"
                         and s.labels == {"topic": "invoice.sealed", "handler": SYNC, "result": "ok"})
    return total


def test_the_background_process_syncs_survives_a_kill_and_stops_with_the_master(fresh_database_url, tmp_path):
    sim = start_simulator({NIM: DEVICE_TOKEN})
    data_dir = tmp_path / "var"
    server = start_server(_env(fresh_database_url), data_dir)
    master = server.process.pid
    try:
        _wait(lambda: len(background_pids(master)) == 1, "the background process")
        (first,) = background_pids(master)
        assert api_worker_pids(master) == []  # --workers 1: the master is the API process
        with httpx.Client(base_url=server.base_url, timeout=30) as c:
            key, outlet = _world(c, sim.url)
            _seal(server.base_url, key, outlet, clients=4, each=5)
            # Only the background process dispatches: the API process runs with in-process work off.
            _wait(lambda: _acknowledged(c, key) == 20, "the sync of 20 invoices")
            assert len(sim.records()["confirmed"]) == 20
            # Its metrics are in serve's shared directory, so the API's /metrics shows them.
            _wait(lambda: _handled(c) == 20, "outbox_handled_total of the background process")
            assert _handled_by(data_dir / "metrics", first) == 20
            assert _handled_by(data_dir / "metrics", master) == 0

            os.kill(first, signal.SIGKILL)
            _wait(lambda: [p for p in background_pids(master) if p != first], "a new background process", 10)
            (second,) = background_pids(master)
            # The new process exists a moment before the master's line about it is written.
            _wait(lambda: "background_process_restarted" in server.log(), "the restart logged", 5)
            assert '"exit_code": -9' in server.log()
            # The dead process's counters are still summed: totals never go backwards.
            assert _handled(c) == 20
            _seal(server.base_url, key, outlet, clients=2, each=5)
            _wait(lambda: _acknowledged(c, key) == 30, "the sync of 10 more invoices by the new process")
            _wait(lambda: _handled(c) == 30, "the new process's counters added to the old one's")

        pids = [master, *child_pids(master)]
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=supervisor.STOP_SECONDS + 10) == 0
        _wait(lambda: not [p for p in pids if is_alive(p)], "every process to exit", 5)
        assert second in pids
    finally:
        server.stop()
        sim.stop()
    log = server.log_path.read_text()
    assert '"event": "worker_stopped"' in log  # the graceful path: claims released, then exit
    assert "database is locked" not in log and '"level": "error"' not in log, log[-5000:]


def test_background_0_keeps_the_work_in_the_api_process(_sqlite_url, tmp_path):
    sim = start_simulator({NIM: DEVICE_TOKEN})
    server = start_server(_env(_sqlite_url), tmp_path / "var", background=0)
    try:
        assert background_pids(server.process.pid) == []
        with httpx.Client(base_url=server.base_url, timeout=30) as c:
            key, outlet = _world(c, sim.url)
            _seal(server.base_url, key, outlet, clients=1, each=2)
            _wait(lambda: _acknowledged(c, key) == 2, "the in-process sync")
        assert background_pids(server.process.pid) == []
    finally:
        server.stop()
        sim.stop()


def test_background_2_with_2_api_processes_all_die_with_a_killed_master(_postgres_url, tmp_path):
    server = start_server(_env(_postgres_url), tmp_path / "var", workers=2, background=2, sealers=1)
    try:
        _wait(lambda: len(background_pids(server.process.pid)) == 2, "two background processes")
        children = child_pids(server.process.pid)
        assert len(sealer_pids(server.process.pid)) == 1
        assert len(children) >= 5  # 2 API, 2 background, 1 sealer (and multiprocessing's tracker)
        survivors = server.kill(wait=supervisor.STOP_SECONDS)
        assert not survivors, f"{survivors} outlived their master"
    finally:
        server.stop()
