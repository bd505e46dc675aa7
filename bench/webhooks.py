"""Webhook deliveries per second to a fast loopback receiver, and the delay from seal to delivery.

Usage: .venv/bin/python bench/webhooks.py [--invoices 1000] [--endpoints 4] [--workers 1,4]
                                          [--rate 5] [--seconds 10] [--no-save]

For each worker count: a throwaway PostgreSQL database, the real `stalela serve` (no in-process
workers) and N `stalela worker` processes, a receiver (uvicorn, its own process) that answers 200 at once.
  baseline    the outbox alone: invoices x endpoints events of a topic nobody handles, moved by the
              same workers (the ceiling the outbox sets)
  deliveries  invoices sealed through the API while the workers are stopped, then the workers
              started: fan-out of every invoice.sealed to each endpoint and delivery, signed, until the
              receiver has counted them all (deliveries/s, and as a ratio of the baseline)
  latency     with the workers running, invoices sealed at --rate per second for --seconds: the delay
              from the invoice's issued_at to its arrival at the receiver, p50 and p99
Exits 1 when a delivery is missing or a webhook-id arrived twice.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).parent))
import seal as seal_bench  # noqa: E402  (Server, api, pg_info, git_commit, free_port, INVOICE, RESULTS)

HERE = Path(__file__).resolve().parent


class Receiver:
    def __init__(self) -> None:
        self.port = seal_bench.free_port()
        self.base = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "Receiver":
        self.proc = subprocess.Popen([sys.executable, str(HERE / "_webhook_receiver.py"), str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                self.stats()
                return self
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("the receiver did not start")

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        self.proc.wait(10)

    def stats(self) -> dict:
        return httpx.get(f"{self.base}/stats", timeout=30).json()

    def reset(self) -> None:
        httpx.post(f"{self.base}/reset", timeout=30)


def start_workers(srv: seal_bench.Server, count: int, concurrency: int) -> list[subprocess.Popen]:
    env = dict(os.environ, STALELA_DATABASE_URL=srv.dsn, STALELA_DATA_DIR=str(srv.tmp), STALELA_LOG_LEVEL="WARNING",
               STALELA_WEBHOOKS_ALLOW_PRIVATE="true", STALELA_CHECKPOINT_INTERVAL_SECONDS="0")
    exe = Path(sys.executable).with_name("stalela")
    return [subprocess.Popen([str(exe), "worker", "--concurrency", str(concurrency)], env=env, cwd=srv.tmp,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            for _ in range(count)]


def stop_workers(workers: list[subprocess.Popen]) -> None:
    for w in workers:
        w.send_signal(signal.SIGTERM)
    for w in workers:
        try:
            w.wait(60)
        except subprocess.TimeoutExpired:
            w.kill()


async def seal_many(base: str, key: str, outlets: list[str], count: int, concurrency: int = 16,
                    rate: float | None = None) -> int:
    """POST /v1/invoices ``count`` times (at most ``rate`` per second if given); returns the 201s."""
    bodies = [seal_bench.INVOICE.replace("OUTLET_ID", o).encode() for o in outlets]
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    done, next_index = 0, 0
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=httpx.Limits(max_connections=concurrency)) as c:
        async def one() -> None:
            nonlocal done, next_index
            while next_index < count:
                i = next_index
                next_index += 1
                if rate:
                    await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
                r = await c.post("/v1/invoices", content=bodies[i % len(bodies)], headers=headers)
                done += r.status_code == 201
        await asyncio.gather(*[one() for _ in range(concurrency)])
    return done


def wait_for(what: str, predicate, timeout: float = 600) -> float:  # noqa: ANN001
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)
    return time.monotonic() - started


def noop_baseline(srv: seal_bench.Server, tenant_id: str, events: int, workers: int, concurrency: int) -> float:
    with psycopg.connect(srv.dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO outbox (tenant_id, id, topic, payload, created_at, available_at, attempts, status) "
                     "SELECT %s, 'evt_bench_' || g, 'bench.noop', '{}', now(), now(), 0, 'pending' "
                     "FROM generate_series(1, %s) g", (tenant_id, events))
        procs = start_workers(srv, workers, concurrency)
        try:
            took = wait_for("the no-op events", lambda: conn.execute(
                "SELECT count(*) FROM outbox WHERE topic = 'bench.noop' AND status = 'done'").fetchone()[0] >= events)
        finally:
            stop_workers(procs)
    return events / took


def bench_workers(workers: int, args: argparse.Namespace, receiver: Receiver) -> dict:
    with seal_bench.Server(1, 32) as srv:
        status, created = seal_bench.api(srv.base, "POST", "/v1/tenants", srv.token,
                                         {"name": "Webhooks bench", "tax_id": "WH1"})
        assert status == 201, created
        key, tenant_id = created["api_key"], created["tenant"]["id"]
        outlets = []
        for i in range(4):
            status, outlet = seal_bench.api(srv.base, "POST", "/v1/outlets", key, {"code": f"W{i}", "name": f"W{i}"})
            assert status == 201, outlet
            outlets.append(outlet["id"])
        for i in range(args.endpoints):
            status, endpoint = seal_bench.api(srv.base, "POST", "/v1/webhook-endpoints", key,
                                              {"url": f"{receiver.base}/hook/{i}", "event_types": ["invoice.sealed"]})
            assert status == 201, endpoint
        expected = args.invoices * args.endpoints
        baseline = noop_baseline(srv, tenant_id, expected, workers, args.concurrency)

        receiver.reset()
        sealed = asyncio.run(seal_many(srv.base, key, outlets, args.invoices))
        procs = start_workers(srv, workers, args.concurrency)
        try:
            took = wait_for("every delivery", lambda: receiver.stats()["count"] >= sealed * args.endpoints)
            rate = sealed * args.endpoints / took
            stats = receiver.stats()
            duplicates = stats["count"] - stats["unique"]

            receiver.reset()
            paced = asyncio.run(seal_many(srv.base, key, outlets, int(args.rate * args.seconds), concurrency=4,
                                          rate=args.rate))
            wait_for("the paced deliveries", lambda: receiver.stats()["count"] >= paced * args.endpoints, 120)
            latencies = sorted(receiver.stats()["latencies"])
        finally:
            stop_workers(procs)
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    run = {"workers": workers, "concurrency": args.concurrency, "endpoints": args.endpoints, "invoices": sealed,
           "deliveries": sealed * args.endpoints, "seconds": round(took, 2), "deliveries_per_s": round(rate, 1),
           "baseline_noop_events_per_s": round(baseline, 1), "ratio": round(rate / baseline, 3),
           "duplicates": duplicates, "latency_n": len(latencies), "latency_p50_ms": round(q[49] * 1000, 1),
           "latency_p99_ms": round(q[98] * 1000, 1), "missing": sealed * args.endpoints - stats["unique"]}
    print(f"  workers={workers}: {run['deliveries_per_s']} deliveries/s ({run['deliveries']} in {run['seconds']} s), "
          f"outbox no-op {run['baseline_noop_events_per_s']} events/s, seal->delivery p50 "
          f"{run['latency_p50_ms']} ms p99 {run['latency_p99_ms']} ms", flush=True)
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--invoices", type=int, default=1000, help="invoices sealed for the throughput run")
    parser.add_argument("--endpoints", type=int, default=4, help="endpoints subscribed to invoice.sealed")
    parser.add_argument("--workers", default="1,4", help="`stalela worker` process counts, comma-separated")
    parser.add_argument("--concurrency", type=int, default=8, help="--concurrency of each worker")
    parser.add_argument("--rate", type=float, default=5, help="invoices per second in the latency run")
    parser.add_argument("--seconds", type=float, default=10, help="length of the latency run")
    parser.add_argument("--duration", type=float, default=None, help=argparse.SUPPRESS)  # bench/run.py passes it on
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/<date>.json")
    args = parser.parse_args(argv)
    if args.duration:  # `run.py --duration 3`: a shorter latency run and a smaller batch
        args.seconds = min(args.seconds, args.duration)
        args.invoices = min(args.invoices, int(100 * args.duration))
    # The server takes no part in deliveries (the worker processes do), and may not be rate limited.
    os.environ.update(STALELA_INPROCESS_WORKERS="false", STALELA_BACKGROUND_WORKERS="0", STALELA_WEBHOOKS_ALLOW_PRIVATE="true",
                      STALELA_RATE_LIMIT_PER_SECOND="1000000", STALELA_RATE_LIMIT_BURST="1000000")
    info = {"cpu_count": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            **seal_bench.pg_info(), "git_commit": seal_bench.git_commit(),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "outbox_poll_seconds": float(os.environ.get("STALELA_OUTBOX_POLL_SECONDS", 0.5))}
    print(f"fsync={info['fsync']} synchronous_commit={info['synchronous_commit']} invoices={args.invoices} "
          f"endpoints={args.endpoints} worker concurrency={args.concurrency}", flush=True)
    runs = []
    with Receiver() as receiver:
        for workers in [int(w) for w in args.workers.split(",") if w.strip()]:
            print(f"workers={workers} ...", flush=True)
            runs.append(bench_workers(workers, args, receiver))
    print(f"\n{'workers':>7} {'deliveries/s':>13} {'no-op ev/s':>11} {'ratio':>6} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'dup':>4} {'missing':>7}")
    for r in runs:
        print(f"{r['workers']:>7} {r['deliveries_per_s']:>13} {r['baseline_noop_events_per_s']:>11} {r['ratio']:>6} "
              f"{r['latency_p50_ms']:>8} {r['latency_p99_ms']:>8} {r['duplicates']:>4} {r['missing']:>7}")
    if not args.no_save:
        seal_bench.RESULTS.mkdir(exist_ok=True)
        path = seal_bench.RESULTS / f"{dt.date.today().isoformat()}.json"
        data = json.loads(path.read_text()) if path.exists() else {}
        data.setdefault("benches", {})["webhooks"] = {"machine": info, "runs": runs}
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        tmp.replace(path)
        print(f"results written to {path.relative_to(seal_bench.ROOT)}")
    bad = [r for r in runs if r["duplicates"] or r["missing"]]
    if bad:
        print("missing or duplicated deliveries", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
