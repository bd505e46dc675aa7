"""1,000 invoices across 5 outlets synced by 3 worker processes against the simulator with about 20 %
injected faults, one worker killed with SIGKILL mid-run: every invoice is acknowledged exactly once
in the simulator's records (no number confirmed twice, none missing)."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
from sqlalchemy import create_engine, text

from stalela.migrations import upgrade
from tests.conftest import OPERATOR_TOKEN
from tests.support.databases import create_database, drop_database
from tests.support.invoices import sample_invoice
from tests.support.server import start_server
from tests.support.simulator import start_simulator

OUTLETS = 5
INVOICES = 1000


@pytest.fixture
def chaos_db(postgres_server):
    if not postgres_server.admin_url:
        pytest.skip(postgres_server.reason)
    url = create_database(postgres_server.admin_url)
    asyncio.run(upgrade(url))
    yield url
    drop_database(postgres_server.admin_url, url)


async def _seal_all(base_url: str, sim_url: str, count: int = INVOICES) -> tuple[dict, list[str]]:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as c:
        r = await c.post("/v1/tenants", json={"name": "Chaos SARL", "tax_id": "C1"},
                         headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
        key = {"Authorization": f"Bearer {r.json()['api_key']}"}
        outlets = []
        for n in range(OUTLETS):
            outlet = (await c.post("/v1/outlets", json={"code": f"CH{n}", "name": f"Chaos {n}"}, headers=key)).json()
            r = await c.put(f"/v1/outlets/{outlet['id']}/authority-device",
                            json={"nim": f"NIM{n}", "base_url": sim_url, "token": f"tok{n}"}, headers=key)
            assert r.status_code == 200, r.text
            outlets.append(outlet)
        numbers: list[str] = []

        async def client(k: int) -> None:
            for i in range(count // 20):
                r = await c.post("/v1/invoices", json=sample_invoice(outlets[(k + i) % OUTLETS]["id"]), headers=key)
                assert r.status_code == 201, r.text
                numbers.append(r.json()["fiscal_number"])

        await asyncio.gather(*[client(k) for k in range(20)])
        return key, numbers


def _workers(env: dict[str, str], n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-m", "stalela.cli.main", "worker", "--concurrency", "8"],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(n)]


def test_thousand_invoices_three_workers_faults_and_a_kill(chaos_db, tmp_path):
    sim = start_simulator({f"NIM{n}": f"tok{n}" for n in range(OUTLETS)})
    data_dir = tmp_path / "var"
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("STALELA_")}
    env = base_env | {"STALELA_DATABASE_URL": chaos_db, "STALELA_MASTER_KEY": "6d" * 32, "STALELA_DATA_DIR": str(data_dir),
                      "STALELA_LOG_LEVEL": "WARNING", "STALELA_OUTBOX_LEASE_SECONDS": "3",
                      "STALELA_OUTBOX_BACKOFF_BASE_SECONDS": "0.05", "STALELA_OUTBOX_BACKOFF_CAP_SECONDS": "0.5",
                      "STALELA_OUTBOX_MAX_ATTEMPTS": "1000", "STALELA_OUTBOX_POLL_SECONDS": "0.1",
                      "STALELA_AUTHORITY_TIMEOUT_SECONDS": "1", "STALELA_OUTBOX_BATCH_SIZE": "20",
                      "STALELA_WEBHOOKS_ALLOW_PRIVATE": "true"}  # the simulator listens on loopback
    server = start_server({"STALELA_DATABASE_URL": chaos_db, "STALELA_OPERATOR_TOKEN": OPERATOR_TOKEN,
                           "STALELA_INPROCESS_WORKERS": "false", "STALELA_BACKGROUND_WORKERS": "0", "STALELA_WEBHOOKS_ALLOW_PRIVATE": "true"}, data_dir)
    workers: list[subprocess.Popen] = []
    try:
        key, numbers = asyncio.run(_seal_all(server.base_url, sim.url))
        assert len(set(numbers)) == INVOICES
        sim.faults(error_rate=0.08, drop_rate=0.05, timeout_rate=0.02, timeout_after_confirm_rate=0.05,
                   timeout_seconds=1.5, latency_ms=1, seed=42)
        workers = _workers(env, 3)
        deadline = time.monotonic() + 420  # generous: CI machines are shared
        while len(sim.records()["confirmed"]) < 250:
            assert time.monotonic() < deadline, "sync did not start"
            time.sleep(0.2)
        workers[0].send_signal(signal.SIGKILL)  # mid-run, claims and all
        workers[0].wait()

        def acknowledged() -> int:
            rows = httpx.get(f"{server.base_url}/v1/sync/status", headers=key, timeout=30).json()["outlets"]
            return sum(r["acknowledged"] for r in rows)

        while acknowledged() < INVOICES:
            assert time.monotonic() < deadline, f"only {acknowledged()} of {INVOICES} acknowledged"
            time.sleep(0.5)

        records = sim.records()
        confirmed = [c["rn"] for c in records["confirmed"]]
        assert sorted(confirmed) == sorted(numbers)  # each exactly once, none missing
        assert max(records["confirm_counts"].values()) == 1
        rows = httpx.get(f"{server.base_url}/v1/sync/status", headers=key, timeout=30).json()["outlets"]
        assert sum(r["failed"] for r in rows) == 0 and sum(r["pending"] for r in rows) == 0
    finally:
        for w in workers:
            if w.poll() is None:
                w.terminate()
        for w in workers:
            try:
                w.wait(20)
            except subprocess.TimeoutExpired:
                w.kill()
        server.stop()
        sim.stop()


def test_sigterm_finishes_or_releases_claims(chaos_db, tmp_path):
    sim = start_simulator({f"NIM{n}": f"tok{n}" for n in range(OUTLETS)})
    data_dir = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STALELA_")} | {
        "STALELA_DATABASE_URL": chaos_db, "STALELA_MASTER_KEY": "6d" * 32, "STALELA_DATA_DIR": str(data_dir), "STALELA_LOG_LEVEL": "WARNING",
        "STALELA_OUTBOX_LEASE_SECONDS": "600", "STALELA_OUTBOX_BATCH_SIZE": "50",
        "STALELA_WEBHOOKS_ALLOW_PRIVATE": "true"}  # the simulator listens on loopback
    server = start_server({"STALELA_DATABASE_URL": chaos_db, "STALELA_OPERATOR_TOKEN": OPERATOR_TOKEN,
                           "STALELA_INPROCESS_WORKERS": "false", "STALELA_BACKGROUND_WORKERS": "0", "STALELA_WEBHOOKS_ALLOW_PRIVATE": "true"}, data_dir)
    try:
        key, numbers = asyncio.run(_seal_all(server.base_url, sim.url, 200))
        sim.faults(latency_ms=300)
        [worker] = _workers(env, 1)
        deadline = time.monotonic() + 60
        while not sim.records()["confirmed"]:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(40) == 0  # finished its batch, released the rest, exited cleanly
        plain = chaos_db.replace("postgresql://", "postgresql+psycopg://")
        with create_engine(plain).connect() as conn:
            held = conn.execute(text("SELECT count(*) FROM outbox WHERE status = 'pending' AND lease_until IS NOT NULL"))
            assert held.scalar_one() == 0  # nothing left waiting for a 10-minute lease to expire
    finally:
        server.stop()
        sim.stop()
