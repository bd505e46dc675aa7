"""Usage metering: events accepted per second, daily aggregation of millions of events, and what the
automatic metering costs a seal.

Usage: .venv/bin/python bench/usage.py [--duration 10] [--concurrency 4] [--batch 1000]
                                       [--events 10000000] [--seal-rounds 2] [--no-save]

Every part runs against a throwaway PostgreSQL database with durable commits (the server's default).
  ingest     the real `stalela serve` (1 API worker, 1 supervised background process); an asyncio
             client in its own process sends `POST /v1/usage/events/batch` with --batch events of
             unique ids, --concurrency requests in flight, for --duration seconds: events/s accepted
             and the batch latency p50/p99. Baseline in the same run and server: the same bodies to
             `POST /_bench/noop` (HTTP and JSON of a batch, no database work). Then every accepted
             event is counted in the database (none lost, none twice).
  aggregate  --events rows written straight into usage_events (SQL generate_series: 200 tenants,
             the five counters, 30 days), then `stalela usage aggregate` over all of them: seconds and
             events/s. Baseline: the bare GROUP BY (tenant, resource, day) over the same table in the
             same run, the floor any aggregation pays for reading the rows.
  metering   seals/s (wrk or the asyncio client, 16 outlets) with STALELA_USAGE_METERING=false, then
             true, alternating --seal-rounds times on fresh servers: the ratio is what metering costs
             (target: >= 0.95, i.e. < 5 %). Each server's no-op rate is printed too, to show noise.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).parent))
import seal as seal_bench  # noqa: E402
from _loadgen import available_backend, run_load  # noqa: E402

# The counters among the built-in resources (storage_bytes is a gauge: samples, not amounts).
COUNTERS = ("api_calls", "invoices_sealed", "network_bytes", "cpu_seconds", "memory_byte_seconds")


# ---- ingest: an asyncio client in its own process --------------------------------------------------

def _batch_body(prefix: str, n: int, batch: int) -> bytes:
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    items = ",".join(
        f'{{"event_id":"{prefix}-{n}-{i}","resource":"{COUNTERS[i % len(COUNTERS)]}",'
        f'"quantity":"{(i % 7) + 1}","occurred_at":"{now}","properties":{{"route":"/v1/x"}}}}'
        for i in range(batch))
    return f'{{"events":[{items}]}}'.encode()


async def _client(config: dict) -> dict:
    import httpx

    headers = {"Authorization": f"Bearer {config['key']}", "Content-Type": "application/json"}
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    accepted = duplicates = 0
    sent = 0
    deadline = time.monotonic() + config["duration"]
    async with httpx.AsyncClient(base_url=config["base"], timeout=120,
                                 limits=httpx.Limits(max_connections=config["concurrency"])) as client:
        async def worker(w: int) -> None:
            nonlocal accepted, duplicates, sent
            n = 0
            while time.monotonic() < deadline:
                body = _batch_body(f"{config['prefix']}{w}", n, config["batch"])
                n += 1
                started = time.perf_counter()
                r = await client.post(config["path"], content=body, headers=headers)
                latencies.append(time.perf_counter() - started)
                statuses[str(r.status_code)] = statuses.get(str(r.status_code), 0) + 1
                sent += config["batch"]
                if config["path"].startswith("/v1/") and r.status_code == 200:
                    for item in r.json()["data"]:
                        accepted += item.get("status") in (200, 201)
                        duplicates += bool(item.get("duplicate"))
        started = time.monotonic()
        await asyncio.gather(*[worker(w) for w in range(config["concurrency"])])
        seconds = time.monotonic() - started
    latencies.sort()
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    return {"requests": len(latencies), "seconds": seconds, "events_sent": sent, "accepted": accepted,
            "duplicates": duplicates, "statuses": statuses, "p50_ms": q[49] * 1000, "p99_ms": q[98] * 1000}


def drive(config: dict) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--client-config"], input=json.dumps(config),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"client failed: {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout)


def bench_ingest(args: argparse.Namespace) -> dict:
    with seal_bench.Server(1, 32) as srv:
        status, created = seal_bench.api(srv.base, "POST", "/v1/tenants", srv.token,
                                         {"name": "Usage bench", "tax_id": "UB1", "jurisdiction": "CD"})
        assert status == 201, created
        key, tenant_id = created["api_key"], created["tenant"]["id"]
        common = dict(base=srv.base, key=key, concurrency=args.concurrency, batch=args.batch)
        drive(dict(common, path="/_bench/noop", duration=min(2.0, args.duration), prefix="warm-noop"))
        drive(dict(common, path="/v1/usage/events/batch", duration=min(2.0, args.duration), prefix="warm"))
        seal_bench.wait_quiet(srv)
        baseline = drive(dict(common, path="/_bench/noop", duration=args.duration, prefix="noop"))
        run = drive(dict(common, path="/v1/usage/events/batch", duration=args.duration, prefix="ev"))
        seal_bench.wait_quiet(srv)
        with psycopg.connect(srv.dsn, autocommit=True) as conn:
            stored = conn.execute("SELECT count(*) FROM usage_events WHERE tenant_id = %s AND event_id LIKE 'ev%%'",
                                  (tenant_id,)).fetchone()[0]
    problems = srv.log_problems()  # the log is read when the server has stopped
    events_per_s = run["accepted"] / run["seconds"]
    noop_events_per_s = baseline["events_sent"] / baseline["seconds"]
    result = {"batch": args.batch, "concurrency": args.concurrency, "events_per_s": round(events_per_s),
              "batch_p50_ms": round(run["p50_ms"], 1), "batch_p99_ms": round(run["p99_ms"], 1),
              "noop_events_per_s": round(noop_events_per_s), "noop_p99_ms": round(baseline["p99_ms"], 1),
              "ratio": round(events_per_s / noop_events_per_s, 3) if noop_events_per_s else 0.0,
              "accepted": run["accepted"], "stored": stored, "duplicates": run["duplicates"],
              "statuses": run["statuses"], "server_log_problems": len(problems), "server_log_sample": problems[:3]}
    result["ok"] = stored == run["accepted"] and not run["duplicates"] and set(run["statuses"]) == {"200"}
    print(f"  ingest: {result['events_per_s']} events/s (batch p50 {result['batch_p50_ms']} ms, "
          f"p99 {result['batch_p99_ms']} ms); no-op {result['noop_events_per_s']} events/s; ratio {result['ratio']}; "
          f"stored {stored} of {run['accepted']} accepted", flush=True)
    return result


# ---- aggregation of many events -------------------------------------------------------------------

def bench_aggregate(args: argparse.Namespace) -> dict:
    with seal_bench.Server(1, 32, env={"STALELA_USAGE_AGGREGATION_SECONDS": "0", "STALELA_BACKGROUND_WORKERS": "0",
                                       "STALELA_INPROCESS_WORKERS": "false"}) as srv:
        tenants = []
        for i in range(args.tenants):
            status, created = seal_bench.api(srv.base, "POST", "/v1/tenants", srv.token,
                                             {"name": f"Agg {i}", "tax_id": f"AG{i}", "jurisdiction": "CD"})
            assert status == 201, created
            tenants.append(created["tenant"]["id"])
        start = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=30)).replace(hour=0, minute=0, second=0,
                                                                                    microsecond=0)
        counters = list(COUNTERS)
        filled = time.monotonic()
        with psycopg.connect(srv.dsn, autocommit=True) as conn:
            # One statement per million rows: tenant, resource and time spread evenly over 30 days.
            chunk = 1_000_000
            for offset in range(0, args.events, chunk):
                n = min(chunk, args.events - offset)
                conn.execute(
                    "INSERT INTO usage_events (tenant_id, id, event_id, resource, quantity_units, occurred_at, "
                    "received_at, properties, payload_hash, source) "
                    "SELECT (%s::text[])[1 + g %% %s], 'uev_' || g, 'bench-' || g, (%s::text[])[1 + (g / %s) %% %s], "
                    "1 + g %% 5, %s::timestamptz + (g %% 2592000) * interval '1 second', now(), NULL, "
                    "repeat('0', 64), 'api' FROM generate_series(%s, %s) g",
                    (tenants, len(tenants), counters, len(tenants), len(counters), start, offset, offset + n - 1))
            conn.execute("ANALYZE usage_events")
        filled = time.monotonic() - filled
        print(f"  aggregate: {args.events} events written in {filled:.1f} s", flush=True)
        with psycopg.connect(srv.dsn, autocommit=True) as conn:
            t0 = time.monotonic()
            groups = conn.execute("SELECT count(*) FROM (SELECT tenant_id, resource, date(occurred_at AT TIME ZONE 'UTC'), "
                                  "sum(quantity_units), count(*) FROM usage_events "
                                  "GROUP BY 1, 2, 3) t").fetchone()[0]
            baseline = time.monotonic() - t0
        env = dict(os.environ, STALELA_DATABASE_URL=srv.dsn, STALELA_DATA_DIR=str(srv.tmp), STALELA_LOG_LEVEL="WARNING")
        exe = Path(sys.executable).with_name("stalela")
        t0 = time.monotonic()
        proc = subprocess.run([str(exe), "usage", "aggregate", "--from", start.date().isoformat(),
                               "--to", dt.date.today().isoformat()], env=env, cwd=srv.tmp, capture_output=True, text=True)
        took = time.monotonic() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"stalela usage aggregate failed: {proc.stderr[-2000:]}")
        t0 = time.monotonic()
        rerun = subprocess.run([str(exe), "usage", "aggregate", "--from", start.date().isoformat(),
                                "--to", dt.date.today().isoformat()], env=env, cwd=srv.tmp, capture_output=True, text=True)
        rerun_took = time.monotonic() - t0
        with psycopg.connect(srv.dsn, autocommit=True) as conn:
            rows, total = conn.execute("SELECT count(*), sum(quantity_units) FROM usage_daily").fetchone()
            expected = conn.execute("SELECT sum(quantity_units) FROM usage_events").fetchone()[0]
    result = {"events": args.events, "tenants": args.tenants, "daily_rows": rows, "groups": groups,
              "seconds": round(took, 1), "events_per_s": round(args.events / took),
              "baseline_group_by_seconds": round(baseline, 1), "ratio": round(baseline / took, 3),
              "rerun_seconds": round(rerun_took, 1), "rerun_ok": rerun.returncode == 0,
              "sum_ok": total == expected and rows == groups}
    print(f"  aggregate: {result['seconds']} s ({result['events_per_s']} events/s), bare GROUP BY "
          f"{result['baseline_group_by_seconds']} s, ratio {result['ratio']}; re-run {result['rerun_seconds']} s; "
          f"{rows} daily rows, sums {'match' if result['sum_ok'] else 'DIFFER'}", flush=True)
    return result


# ---- what metering costs a seal -------------------------------------------------------------------

def seal_rate(metering: bool, args: argparse.Namespace, backend: str) -> dict:
    env = {"STALELA_USAGE_METERING": "true" if metering else "false"}
    with seal_bench.Server(1, 32, env=env) as srv:
        status, created = seal_bench.api(srv.base, "POST", "/v1/tenants", srv.token,
                                         {"name": "Meter bench", "tax_id": "MB1", "jurisdiction": "CD"})
        assert status == 201, created
        key = created["api_key"]
        outlets = [seal_bench.api(srv.base, "POST", "/v1/outlets", key, {"code": f"M{i}", "name": f"M{i}"})[1]["id"]
                   for i in range(16)]
        common = dict(host="127.0.0.1", port=srv.port, concurrency=32)
        run_load(backend, path="/v1/invoices", auth=key, body=seal_bench.INVOICE, outlets=outlets, duration=2, **common)
        seal_bench.wait_quiet(srv)
        noop = run_load(backend, path="/_bench/noop", auth="", body=seal_bench.BASELINE, outlets=[],
                        duration=args.duration, **common)
        r = run_load(backend, path="/v1/invoices", auth=key, body=seal_bench.INVOICE, outlets=outlets,
                     duration=args.duration, **common)
        sealed = sum(r["created"].values())
        # The metering is asynchronous: wait for the outbox to record every invoice before stopping.
        metered = invoices = 0
        if metering:
            deadline = time.monotonic() + 120
            with psycopg.connect(srv.dsn, autocommit=True) as conn:
                while time.monotonic() < deadline:
                    metered = conn.execute("SELECT count(*) FROM usage_events WHERE resource = 'invoices_sealed'"
                                           ).fetchone()[0]
                    invoices = conn.execute("SELECT count(*) FROM invoices").fetchone()[0]
                    if metered >= invoices:
                        break
                    time.sleep(0.5)
        errors = r["socket_errors"] + sum(n for code, n in r["statuses"].items() if not code.startswith("2"))
    return {"metering": metering, "seals_per_s": round(r["rps"], 1), "p99_ms": round(r["p99_ms"], 1),
            "noop_rps": round(noop["rps"]), "sealed": sealed, "invoices": invoices, "metered": metered,
            "errors": errors}


def bench_metering(args: argparse.Namespace) -> dict:
    backend = available_backend("auto")
    rounds = []
    for i in range(args.seal_rounds):
        for metering in (False, True) if i % 2 == 0 else (True, False):
            r = seal_rate(metering, args, backend)
            rounds.append(r)
            # Warm-up seals and those cut at wrk's deadline are invoices too: all of them are metered.
            metered = f", {r['metered']} of {r['invoices']} invoices metered" if metering else ""
            print(f"  metering={'on ' if metering else 'off'}: {r['seals_per_s']} seals/s (p99 {r['p99_ms']} ms, "
                  f"no-op {r['noop_rps']} req/s){metered}", flush=True)
    on = statistics.mean(r["seals_per_s"] for r in rounds if r["metering"])
    off = statistics.mean(r["seals_per_s"] for r in rounds if not r["metering"])
    result = {"rounds": rounds, "seals_per_s_off": round(off, 1), "seals_per_s_on": round(on, 1),
              "ratio": round(on / off, 3) if off else 0.0, "client": backend,
              "ok": not any(r["errors"] or r["metered"] < r["invoices"] for r in rounds)}
    print(f"  metering: {result['seals_per_s_on']} seals/s on vs {result['seals_per_s_off']} off: ratio "
          f"{result['ratio']} (cost {round((1 - result['ratio']) * 100, 1)} %)", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per timed scenario")
    parser.add_argument("--concurrency", type=int, default=4, help="batch requests in flight")
    parser.add_argument("--batch", type=int, default=1000, help="events per batch request (<= 1000)")
    parser.add_argument("--events", type=int, default=10_000_000, help="events for the aggregation run")
    parser.add_argument("--tenants", type=int, default=200, help="tenants the aggregation's events spread over")
    parser.add_argument("--seal-rounds", type=int, default=2, help="alternations of metering off/on")
    parser.add_argument("--only", choices=["ingest", "aggregate", "metering"], action="append",
                        help="run only these parts (repeatable)")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/<date>.json")
    args = parser.parse_args(argv)
    if args.duration < 10 and args.events == 10_000_000:  # `bench/run.py --duration 3`: a shorter run
        args.events = 1_000_000
    os.environ.update(STALELA_RATE_LIMIT_PER_SECOND="1000000", STALELA_RATE_LIMIT_BURST="1000000")
    info = {"cpu_count": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            **seal_bench.pg_info(), "git_commit": seal_bench.git_commit(),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    print(f"fsync={info['fsync']} synchronous_commit={info['synchronous_commit']}", flush=True)
    parts = args.only or ["ingest", "aggregate", "metering"]
    results: dict = {}
    if "ingest" in parts:
        results["ingest"] = bench_ingest(args)
    if "aggregate" in parts:
        results["aggregate"] = bench_aggregate(args)
    if "metering" in parts:
        results["metering"] = bench_metering(args)
    if not args.no_save:
        seal_bench.RESULTS.mkdir(exist_ok=True)
        path = seal_bench.RESULTS / f"{dt.date.today().isoformat()}.json"
        data = json.loads(path.read_text()) if path.exists() else {}
        data.setdefault("benches", {})["usage"] = {"machine": info, **results}
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        tmp.replace(path)
        print(f"results written to {path.relative_to(seal_bench.ROOT)}")
    bad = [name for name, r in results.items() if not r.get("ok", r.get("sum_ok", True))]
    if bad:
        print(f"parts with errors: {', '.join(bad)}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--client-config"]:
        print(json.dumps(asyncio.run(_client(json.loads(sys.stdin.read())))))
        sys.exit(0)
    sys.exit(main())
