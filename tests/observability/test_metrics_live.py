"""/metrics of real processes: `stalela serve` with 2 workers summing through the shared directory,
and a separate `stalela worker` serving its own metrics."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from stalela.observability.metrics import LATENCY_BUCKETS
from tests.conftest import OPERATOR_TOKEN
from tests.observability.test_metrics import scrape_text, value
from tests.support.invoices import sample_invoice
from tests.support.server import free_port, start_server

pytestmark = pytest.mark.e2e
METRICS_TOKEN = "live-metrics-token-1234"
AUTH = {"Authorization": f"Bearer {METRICS_TOKEN}"}
OP = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
SYNC = "authority.tasks.sync_invoice"


async def _traffic(base_url: str, tenants: int, per_tenant: int, metrics_dir=None) -> list[dict]:  # noqa: ANN001
    """Tenants with one outlet each, ``per_tenant`` concurrent seals each (more rounds until both
    worker processes sealed some, when ``metrics_dir`` is given), and 40 404s; returns the worlds
    with the number each sealed."""
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as c:
        worlds = []
        for n in range(tenants):
            r = await c.post("/v1/tenants", json={"name": f"Live {n}", "tax_id": f"LV{n}"}, headers=OP)
            assert r.status_code == 201, r.text
            key = {"Authorization": f"Bearer {r.json()['api_key']}"}
            outlet = (await c.post("/v1/outlets", json={"code": f"L{n}", "name": "L"}, headers=key)).json()
            worlds.append({"tenant_id": r.json()["tenant"]["id"], "key": key, "outlet_id": outlet["id"], "sealed": 0})

        async def seal(client: httpx.AsyncClient, w: dict) -> None:
            r = await client.post("/v1/invoices", json=sample_invoice(w["outlet_id"]), headers=w["key"])
            assert r.status_code == 201, r.text
            w["sealed"] += 1

        await asyncio.gather(*[seal(c, w) for w in worlds for _ in range(per_tenant)])
        # Which worker accepts a connection is the kernel's choice: under load one may take them all.
        for _ in range(20):
            if metrics_dir is None or len([v for v in _per_process_sealed(metrics_dir).values() if v]) >= 2:
                break
            await asyncio.sleep(0.2)
            async with httpx.AsyncClient(base_url=base_url, timeout=60) as fresh:  # new connections
                await asyncio.gather(*[seal(fresh, w) for w in worlds for _ in range(5)])
        await asyncio.gather(*[c.get(f"/v1/invoices/inv_{uuid.uuid4().hex}", headers=worlds[0]["key"])
                               for _ in range(40)])
        return worlds


def _per_process_sealed(metrics_dir) -> dict[str, float]:  # noqa: ANN001
    """invoices_sealed_total as written by each process into its own file."""
    from prometheus_client.multiprocess import MultiProcessCollector

    out = {}
    for path in metrics_dir.glob("counter_*.db"):
        for metric in MultiProcessCollector.merge([str(path)], accumulate=True):
            if metric.name == "invoices_sealed":
                out[path.stem] = sum(s.value for s in metric.samples if s.name == "invoices_sealed_total")
    return out


def test_two_worker_processes_sum_their_metrics(tmp_path):
    data_dir = tmp_path / "var"
    stale = data_dir / "metrics" / "counter_999999.db"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"left over by a previous run, and not even a valid file")
    internal = free_port()
    server = start_server({"STALELA_OPERATOR_TOKEN": OPERATOR_TOKEN, "STALELA_METRICS_TOKEN": METRICS_TOKEN,
                           "STALELA_METRICS_PORT": str(internal), "STALELA_METRICS_CACHE_SECONDS": "0",
                           # Each API process seals what it receives (no sealer, no routing), so that both
                           # write the counters this test sums.
                           "STALELA_SEAL_ROUTING": "false"},
                          data_dir, workers=2, sealers=0)
    try:
        assert not stale.exists()  # `stalela serve` empties the directory at start
        worlds = asyncio.run(_traffic(server.base_url, tenants=2, per_tenant=15, metrics_dir=data_dir / "metrics"))
        total = sum(w["sealed"] for w in worlds)
        per_process = _per_process_sealed(data_dir / "metrics")
        assert sum(per_process.values()) == total
        assert len([v for v in per_process.values() if v]) == 2, per_process  # both workers sealed some

        assert httpx.get(f"{server.base_url}/metrics").status_code == 401
        answers = [httpx.get(f"{server.base_url}/metrics", headers=AUTH).text for _ in range(4)]
        answers += [httpx.get(f"http://127.0.0.1:{internal}/metrics", headers=AUTH).text for _ in range(4)]
        assert httpx.get(f"http://127.0.0.1:{internal}/metrics").status_code == 401
        for text in answers:  # whichever worker answered, the sum over both
            scraped = scrape_text(text)
            for w in worlds:
                assert value(scraped, "invoices_sealed_total", tenant_id=w["tenant_id"], outlet_id=w["outlet_id"],
                             type="FV") == w["sealed"]
        scraped = scrape_text(answers[-1])

        families = {s.name: s for samples in scraped.values() for s in samples}
        assert set(families["api_requests_total"].labels) == {"method", "endpoint", "status", "tenant_id"}
        assert set(families["api_request_duration_seconds_bucket"].labels) == {"method", "endpoint", "le"}
        assert set(families["invoices_sealed_total"].labels) == {"tenant_id", "outlet_id", "type"}
        for w in worlds:
            assert value(scraped, "api_requests_total", method="POST", endpoint="/v1/invoices", status="201",
                         tenant_id=w["tenant_id"]) == w["sealed"]
            assert value(scraped, "fiscal_counter_value", tenant_id=w["tenant_id"], outlet_id=w["outlet_id"]) == w["sealed"]
        assert value(scraped, "api_requests_total", method="GET", endpoint="/v1/invoices/{invoice_id}", status="404",
                     tenant_id=worlds[0]["tenant_id"]) == 40
        endpoints = {s.labels["endpoint"] for s in scraped["api_requests_total"]}
        assert not any("inv_" in e for e in endpoints), endpoints
        les = {s.labels["le"] for s in scraped["api_request_duration_seconds_bucket"]
               if s.labels["endpoint"] == "/v1/invoices"}
        assert les == {str(float(b)) for b in LATENCY_BUCKETS} | {"+Inf"}
        assert value(scraped, "api_request_duration_seconds_count", method="POST", endpoint="/v1/invoices") == total
        for stage in ("validate", "number", "sign", "store"):
            assert value(scraped, "seal_duration_seconds_count", stage=stage) == total
        assert value(scraped, "signer_operations_total", backend="software", result="ok") == total
        assert value(scraped, "tenant_count", status="active") == 2
        assert value(scraped, "outbox_pending", topic="invoice.sealed") is not None
        assert value(scraped, "metrics_scrape_errors") == 0
        # serve's background process handled the invoice.sealed events, into the same directory. The counter
        # moves as each handler ends and the events leave "pending" when their batch's outcomes are written
        # (outbox.dispatcher): on a loaded machine a scrape can fall between the two, so wait for both.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            scraped = scrape_text(httpx.get(f"{server.base_url}/metrics", headers=AUTH).text)
            if value(scraped, "outbox_handled_total", topic="invoice.sealed", handler=SYNC, result="ok") == total \
                    and value(scraped, "outbox_pending", topic="invoice.sealed") == 0:
                break
            time.sleep(0.2)
        assert value(scraped, "outbox_handled_total", topic="invoice.sealed", handler=SYNC, result="ok") == total
        assert value(scraped, "outbox_pending", topic="invoice.sealed") == 0
    finally:
        server.stop()
    assert '"level": "error"' not in server.log_path.read_text()


def test_a_separate_worker_serves_its_own_metrics(tmp_path):
    data_dir = tmp_path / "var"
    server = start_server({"STALELA_OPERATOR_TOKEN": OPERATOR_TOKEN, "STALELA_METRICS_TOKEN": METRICS_TOKEN,
                           "STALELA_INPROCESS_WORKERS": "false", "STALELA_BACKGROUND_WORKERS": "0", "STALELA_METRICS_CACHE_SECONDS": "0"}, data_dir)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STALELA_")} | {
        "STALELA_MASTER_KEY": "6d" * 32, "STALELA_DATA_DIR": str(data_dir), "STALELA_LOG_LEVEL": "WARNING", "STALELA_OUTBOX_POLL_SECONDS": "0.1",
        "STALELA_WORKER_METRICS_PORT": str(port), "STALELA_METRICS_TOKEN": METRICS_TOKEN,
        # Inherited by mistake from serve's environment: the worker must not write into serve's directory.
        "PROMETHEUS_MULTIPROC_DIR": str(data_dir / "metrics"),
    }
    log = open(tmp_path / "worker.log", "wb")
    worker = subprocess.Popen([sys.executable, "-m", "stalela.cli.main", "worker"], env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        worlds = asyncio.run(_traffic(server.base_url, tenants=1, per_tenant=5))
        deadline = time.monotonic() + 30
        scraped: dict = {}
        while time.monotonic() < deadline:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/metrics", headers=AUTH, timeout=5)
                scraped = scrape_text(r.text)
                if value(scraped, "outbox_handled_total", topic="invoice.sealed", handler=SYNC, result="ok") == 5:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        assert value(scraped, "outbox_handled_total", topic="invoice.sealed", handler=SYNC, result="ok") == 5
        assert "outbox_pending" not in scraped  # database gauges come from serve's endpoint only
        assert "python_gc_objects_collected_total" in scraped  # in-memory registry: process metrics too
        assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 401
        serve = scrape_text(httpx.get(f"{server.base_url}/metrics", headers=AUTH).text)
        assert value(serve, "outbox_pending", topic="invoice.sealed") == 0
        assert value(serve, "outbox_handled_total", topic="invoice.sealed", handler=SYNC, result="ok") is None
        assert value(serve, "invoices_sealed_total", tenant_id=worlds[0]["tenant_id"],
                     outlet_id=worlds[0]["outlet_id"], type="FV") == 5
        assert not list((data_dir / "metrics").glob(f"*_{worker.pid}.db"))
    finally:
        worker.terminate()
        worker.wait(30)
        log.close()
        server.stop()
    assert worker.returncode == 0, (tmp_path / "worker.log").read_text()[-3000:]
