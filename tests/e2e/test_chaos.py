"""Chaos on PostgreSQL: a live `stalela serve` (2 workers) and a separate `stalela worker` under a
concurrent load of invoice POSTs, each with an Idempotency-Key and retried on any failure, while one of
the server's uvicorn workers is killed with SIGKILL (the master replaces it), the server's master is killed
and the server restarted, the `stalela worker` is killed and restarted, and PostgreSQL itself is crashed
(``pg_ctl stop -m immediate``) and started again after a few seconds. Afterwards: exactly one invoice per
key, every retried key answers the original invoice, counters without gaps, and `stalela verify` says valid.

PostgreSQL is a throwaway cluster of the test's own (``initdb``/``pg_ctl``): the shared server on
127.0.0.1:5432 serves other tests and must never be stopped. Without ``initdb`` the test skips.

Marked ``chaos`` (run alone with ``pytest -m chaos``); it takes about 30 s, so `make test` runs it too."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import psycopg
import pytest

from stalela.migrations import upgrade
from tests.conftest import MASTER_KEY, OPERATOR_TOKEN
from tests.support.databases import PgServer, create_database, throwaway_cluster
from tests.support.invoices import sample_invoice
from tests.support.server import api_worker_pids, is_alive, start_server

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]
CLIENTS = 8
KEYS_PER_CLIENT = 20
OUTLETS = 4
OUTAGE_SECONDS = 3


class Stack:
    """The processes under test and the ways to break them."""

    def __init__(self, url: str, cluster: PgServer, data_dir: Path) -> None:
        self.url, self.cluster, self.data_dir = url, cluster, data_dir
        self.env = {"STALELA_DATABASE_URL": url, "STALELA_OPERATOR_TOKEN": OPERATOR_TOKEN,
                    "STALELA_INPROCESS_WORKERS": "false", "STALELA_BACKGROUND_WORKERS": "0", "STALELA_UNAVAILABLE_RETRY_AFTER_SECONDS": "1"}
        self.server = start_server(self.env, data_dir, workers=2)
        self.port = int(self.server.base_url.rsplit(":", 1)[1])
        self.worker = self._start_worker()

    def _start_worker(self) -> subprocess.Popen:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STALELA_")} | self.env | {
            "STALELA_DATA_DIR": str(self.data_dir), "STALELA_MASTER_KEY": MASTER_KEY, "STALELA_LOG_LEVEL": "WARNING",
            "STALELA_OUTBOX_POLL_SECONDS": "0.2"}
        log = open(self.data_dir / "worker.log", "ab")
        return subprocess.Popen([sys.executable, "-m", "stalela.cli.main", "worker"], env=env, stdout=log,
                                stderr=subprocess.STDOUT)

    def kill_server_worker(self, wait: float = 30) -> None:
        """SIGKILL one uvicorn worker, as a crash in a request would; its master starts another in its place."""
        before = self._uvicorn_workers()
        assert len(before) == 2, before
        os.kill(before[0], signal.SIGKILL)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            now = self._uvicorn_workers()
            if len(now) == 2 and before[0] not in now:
                return
            time.sleep(0.1)
        raise AssertionError(f"the master did not replace worker {before[0]}: {now}\n{self.server.log()}")

    def _uvicorn_workers(self) -> list[int]:
        """The master's live children but multiprocessing's resource tracker, which serves no request."""
        return api_worker_pids(self.server.process.pid)

    def kill_server(self) -> None:
        survivors = self.server.kill()
        assert not survivors, f"workers {survivors} outlived their master"
        self.server = start_server(self.env, self.data_dir, workers=2, port=self.port)

    def kill_worker(self) -> None:
        self.worker.kill()
        self.worker.wait()
        self.worker = self._start_worker()

    def restart_database(self) -> None:
        started = "SELECT pg_postmaster_start_time()"
        with psycopg.connect(self.cluster.admin_url) as conn:
            before = conn.execute(started).fetchone()[0]
        self.cluster.restart(OUTAGE_SECONDS)
        with psycopg.connect(self.cluster.admin_url) as conn:
            assert conn.execute(started).fetchone()[0] > before, "PostgreSQL was not restarted"

    def stop(self) -> None:
        if self.worker.poll() is None:
            self.worker.terminate()
            try:
                self.worker.wait(20)
            except subprocess.TimeoutExpired:
                self.worker.kill()
        self.server.stop()


def _body(outlets: list[str], client: int, n: int) -> dict:
    return sample_invoice(outlets[(client + n) % len(outlets)], reference=f"chaos-{client}-{n}")


async def _load(stack: Stack, key: dict[str, str], outlets: list[str]) -> tuple[dict[str, dict], Counter]:
    """Every client seals its keys one after the other, each retried until it gets its 201."""
    sealed: dict[str, dict] = {}
    failures: Counter = Counter()
    base = stack.server.base_url  # the same port after every restart

    async def client(k: int) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=30) as c:
            for n in range(KEYS_PER_CLIENT):
                idem = f"chaos-{k}-{n}"
                while True:
                    await paced()
                    try:
                        r = await c.post("/v1/invoices", json=_body(outlets, k, n),
                                         headers=key | {"Idempotency-Key": idem})
                    except httpx.TransportError as exc:
                        failures[type(exc).__name__] += 1
                    else:
                        if r.status_code == 201:
                            sealed[idem] = r.json()
                            break
                        failures[r.status_code] += 1
                        assert r.status_code == 503, r.text  # an outage may refuse; nothing else may fail
                    await asyncio.sleep(0.2)

    total = CLIENTS * KEYS_PER_CLIENT
    actions = ((0.1, stack.kill_server_worker), (0.25, stack.kill_server), (0.45, stack.kill_worker),
               (0.65, stack.restart_database))
    done = 0  # actions finished

    async def paced() -> None:
        """Hold the load back until the chaos has caught up: no request starts past the next action's share (or
        90 % after the last) while the action before it still runs. On a loaded machine replacing a uvicorn
        worker takes seconds, and the clients once sealed every key in that time, so the later actions hit an
        idle stack and no client saw any of it."""
        while True:
            limit = actions[done + 1][0] if done + 1 < len(actions) else 0.9 if done < len(actions) else 1.0
            if len(sealed) < limit * total:
                return
            await asyncio.sleep(0.05)

    async def chaos() -> None:
        nonlocal done
        for share, action in actions:
            while len(sealed) < share * total:
                await asyncio.sleep(0.05)
            await asyncio.to_thread(action)
            done += 1

    await asyncio.gather(chaos(), *[client(k) for k in range(CLIENTS)])
    return sealed, failures


@pytest.fixture
def own_cluster():
    cluster = throwaway_cluster()
    if cluster is None:
        pytest.skip("the chaos test restarts a PostgreSQL cluster of its own and needs initdb/pg_ctl (Debian: "
                    "postgresql); the shared server is never stopped")
    yield cluster
    cluster.stop()


def test_exactly_once_invoices_through_kills_and_a_database_restart(own_cluster, tmp_path):
    fresh_database_url = create_database(own_cluster.admin_url)
    asyncio.run(upgrade(fresh_database_url))
    stack = Stack(fresh_database_url, own_cluster, tmp_path / "var")
    try:
        with httpx.Client(base_url=stack.server.base_url, timeout=30) as c:
            r = c.post("/v1/tenants", json={"name": "Chaos SARL", "tax_id": "K1", "jurisdiction": "CD"},
                       headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
            tenant, key = r.json()["tenant"]["id"], {"Authorization": f"Bearer {r.json()['api_key']}"}
            outlets = [c.post("/v1/outlets", json={"code": f"K{i}", "name": f"K{i}"}, headers=key).json()["id"]
                       for i in range(OUTLETS)]
        sealed, failures = asyncio.run(_load(stack, key, outlets))
        assert len(sealed) == CLIENTS * KEYS_PER_CLIENT
        assert failures, "the chaos did not reach the clients"
        print(f"failures seen by the clients: {dict(failures)}")

        # Every key again: the original invoice, replayed, nothing sealed anew.
        with httpx.Client(base_url=stack.server.base_url, timeout=30) as c:
            for idem, first in sealed.items():
                k, n = (int(x) for x in idem.split("-")[1:])
                r = c.post("/v1/invoices", json=_body(outlets, k, n), headers=key | {"Idempotency-Key": idem})
                assert r.status_code == 201 and r.headers["idempotent-replayed"] == "true", r.text
                assert r.json()["id"] == first["id"] and r.json()["fiscal_number"] == first["fiscal_number"]
    finally:
        stack.stop()

    with psycopg.connect(fresh_database_url) as conn:  # as the owner: no row-level security in the way
        rows = conn.execute("SELECT outlet_id, count(*), count(DISTINCT counter), min(counter), max(counter) "
                            "FROM invoices WHERE tenant_id = %s GROUP BY outlet_id", (tenant,)).fetchall()
        assert sum(r[1] for r in rows) == len(sealed)  # exactly one invoice per key
        for outlet, count, distinct, low, high in rows:
            assert (count, distinct, low, high) == (count, count, 1, count), f"gap or duplicate in {outlet}"
        assert {r[0] for r in rows} == set(outlets)
        ids = [i for (i,) in conn.execute("SELECT id FROM invoices WHERE tenant_id = %s", (tenant,))]
        assert sorted(ids) == sorted(s["id"] for s in sealed.values())

    env = {k: v for k, v in os.environ.items() if not k.startswith("STALELA_")} | {
        "STALELA_MASTER_KEY": MASTER_KEY, "STALELA_DATA_DIR": str(tmp_path / "var")}
    verify = subprocess.run([sys.executable, "-m", "stalela.cli.main", "verify", "--database-url", fresh_database_url,
                             "--tenant", tenant, "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0, verify.stdout + verify.stderr

