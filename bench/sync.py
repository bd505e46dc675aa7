"""The outbox and the DGI sync: no-op events/s against procrastinate, seal -> acknowledged lag, drain under faults.

Usage: .venv/bin/python bench/sync.py [--quick] [--events 50000] [--batch 500] [--jobs 5000] [--rate 200]
                                      [--duration 20] [--tenants 4] [--outlets 2] [--only outbox,...] [--no-save]
outbox: N no-op events COPYed into the outbox, `stalela worker` processes until all are done. procrastinate
(`pip install procrastinate==3.10.0`, bench only; else skipped): N' no-op jobs, one worker. lag: seal.py's
Server, 2 workers, the e-MCF simulator, seals at a steady --rate; lag = ack created_at - issued_at. drain
(_sync_drain.py): a sealed backlog synced with 0 % and 20 % authority faults. See README.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import os
import platform
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import psycopg

sys.path.insert(0, str(Path(__file__).parent))
import seal as seal_bench  # noqa: E402  (Server, api, cpu_ticks, cores, machine_busy, WaitSampler, pg_info, ...)
from _sync_drain import bench_drain, print_drain  # noqa: E402
from _loadgen import _read_response  # noqa: E402

from stalela.migrations import upgrade  # noqa: E402
from stalela.kit.ids import new_id  # noqa: E402

STALELA = Path(sys.executable).with_name("stalela")
UTC = dt.timezone.utc


# ---- processes, databases, measuring ------------------------------------------------------------

@contextmanager
def scratch_db(migrate: bool = True):
    """A throwaway database (migrated unless told otherwise), dropped on exit."""
    db = f"stalela_bench_{secrets.token_hex(4)}"
    with psycopg.connect(seal_bench.PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    try:
        if migrate:
            asyncio.run(upgrade(f"postgresql://postgres@127.0.0.1:5432/{db}"))
        yield db, f"postgresql://postgres@127.0.0.1:5432/{db}"
    finally:
        with psycopg.connect(seal_bench.PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def worker_env(dsn: str, data_dir: Path, batch: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STALELA_")}
    return env | {"STALELA_DATABASE_URL": dsn, "STALELA_DATA_DIR": str(data_dir), "STALELA_LOG_LEVEL": "WARNING",
                  "STALELA_CHECKPOINT_INTERVAL_SECONDS": "0", "STALELA_OUTBOX_BATCH_SIZE": str(batch),
                  "STALELA_OUTBOX_POLL_SECONDS": "0.05", "STALELA_DATABASE_POOL_SIZE": "5",  # 8 handlers: <= 10
                  "STALELA_WEBHOOKS_ALLOW_PRIVATE": "true"}  # the simulator listens on loopback


def spawn(cmd: list[str], env: dict | None, log: Path) -> subprocess.Popen:
    with open(log, "a") as out:  # cwd: the temp dir, so a developer's ./.env cannot change what is measured
        return subprocess.Popen(cmd, env=env, cwd=log.parent, stdout=out, stderr=subprocess.STDOUT)


def stop(procs: list[subprocess.Popen]) -> None:
    for p in [p for p in procs if p.poll() is None]:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(40)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def log_errors(log: Path) -> list[str]:
    """Error lines of a log, by seal.py's rule (error/critical level, tracebacks)."""
    return seal_bench.Server.log_problems(SimpleNamespace(log_text=log.read_text() if log.exists() else ""))[:5]


def ticks(pids: list[int], db: str, mine: int) -> tuple[dict, dict]:
    """CPU ticks of the process trees of pids, and of db's backends except ours (the one that polls)."""
    each = [seal_bench.cpu_ticks(pid, db) for pid in pids]
    return ({p: t for e in each for p, t in e["server"].items()},
            {p: t for p, t in each[0]["postgres"].items() if p != mine})


def drain(dsn: str, db: str, count_sql: str, total: int, procs: list[subprocess.Popen]) -> dict:
    """From now (the processes were just spawned) until count_sql reaches total: rates and CPU used."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        pids, mine = [p.pid for p in procs], conn.info.backend_pid
        t0, (w0, pg0), busy0 = time.monotonic(), ticks(pids, db, mine), seal_bench.machine_busy()
        sampler = seal_bench.WaitSampler(seal_bench.PG_ADMIN, db)
        sampler.start()
        first = None
        while True:
            exited = any(p.poll() is not None for p in procs)  # checked before counting
            done, now = conn.execute(count_sql).fetchone()[0], time.monotonic()
            if done and first is None:  # start-up is over: the steady window (rate, CPU per event) begins
                first, first_count, (wf, pgf) = now, done, ticks(pids, db, mine)
            if done >= total:
                break
            if now - t0 > 600 or exited:
                sampler.result()
                raise RuntimeError(f"{done} of {total} done after {now - t0:.1f} s, exits {[p.poll() for p in procs]}")
            time.sleep(0.1)
        (w1, pg1), busy1 = ticks(pids, db, mine), seal_bench.machine_busy()
    seconds, busy = now - t0, (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1])
    wcpu, pgcpu = seal_bench.cores(w0, w1, seconds), seal_bench.cores(pg0, pg1, seconds)
    # CPU per event (workers + their backends, steady window) hardly moves with the rest of the box; rates do.
    steady_cpu = (seal_bench.cores(wf, w1, 1) + seal_bench.cores(pgf, pg1, 1)) / max(1, total - first_count)
    return {"seconds": round(seconds, 3), "rate": total / seconds, "startup_s": round(first - t0, 3),
            "steady_rate": (total - first_count) / (now - first) if now > first else 0.0, "worker_cpu": wcpu,
            "postgres_cpu": pgcpu, "cpu_us_per_event": steady_cpu * 1e6, "machine_busy": busy,
            "other_cpu": busy * os.cpu_count() - wcpu - pgcpu, "pg_backends": sampler.result()}


# ---- 1) the outbox with a no-op handler; 2) procrastinate ---------------------------------------

def fill_outbox(dsn: str, n: int) -> None:
    now = dt.datetime.now(UTC)
    with psycopg.connect(dsn) as conn:
        conn.execute("TRUNCATE outbox")
        with conn.cursor().copy("COPY outbox (tenant_id, id, topic, payload, created_at, available_at, attempts, "
                                "status) FROM STDIN") as copy:
            for i in range(n):
                copy.write_row((f"ten_bench{i % 4}", new_id("evt"), "bench.noop", "{}", now, now, 0, "pending"))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ANALYZE outbox")  # as autovacuum would soon after such an insert


def bench_outbox(args: argparse.Namespace, tmp: Path) -> list[dict]:
    plan = [(1, b) for b in sorted({args.batch} if args.quick else {100, 500, 1000, args.batch})] + [(4, args.batch)]
    runs = []
    with scratch_db() as (db, dsn):
        for workers, batch in plan:
            print(f"outbox: {args.events} events, {workers} worker(s), batch {batch} ...", flush=True)
            fill_outbox(dsn, args.events)
            log = tmp / f"outbox-{workers}-{batch}.log"
            procs = [spawn([str(STALELA), "worker", "--concurrency", "8"], worker_env(dsn, tmp, batch), log)
                     for _ in range(workers)]
            run = {"workers": workers, "batch": batch, "events": args.events}
            try:
                run.update(drain(dsn, db, "SELECT count(*) FROM outbox WHERE status = 'done'", args.events, procs))
            except RuntimeError as exc:
                run["error"] = str(exc)
            finally:
                stop(procs)
            runs.append(run | {"log_errors": log_errors(log)})
    return runs


async def noop() -> None:
    return None


def procrastinate_app(dsn: str):
    import procrastinate
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))
    return app, app.task(name="noop")(noop)


def procrastinate_worker(dsn: str, concurrency: int) -> None:
    """The worker process, until SIGTERM (wait=True: it outlives the queue, so its CPU can be sampled)."""
    procrastinate_app(dsn)[0].run_worker(concurrency=concurrency, wait=True)


async def defer_jobs(dsn: str, n: int) -> None:
    logging.getLogger("procrastinate").setLevel(logging.ERROR)  # "App is instantiated in the main module"
    app, task = procrastinate_app(dsn)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        for start in range(0, n, 1000):
            await task.batch_defer_async(*[{} for _ in range(min(1000, n - start))])


def bench_procrastinate(args: argparse.Namespace, tmp: Path) -> dict:
    try:
        import procrastinate
    except ImportError:
        return {"skipped": "procrastinate is not installed: .venv/bin/pip install procrastinate==3.10.0"}
    out = {"version": procrastinate.__version__, "jobs": args.jobs, "runs": []}
    for concurrency in (1, 8):
        print(f"procrastinate {out['version']}: {args.jobs} jobs, 1 worker, concurrency {concurrency} ...", flush=True)
        run = {"workers": 1, "concurrency": concurrency, "jobs": args.jobs}
        try:
            with scratch_db(migrate=False) as (db, dsn):
                asyncio.run(defer_jobs(dsn, args.jobs))
                log = tmp / f"procrastinate-{concurrency}.log"
                # Imported as a module, not run as __main__: procrastinate warns about an app in __main__.
                code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import sync; " \
                       f"sync.procrastinate_worker({dsn!r}, {concurrency})"
                procs = [spawn([sys.executable, "-c", code], None, log)]
                try:
                    run.update(drain(dsn, db, "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'",
                                     args.jobs, procs))
                finally:
                    stop(procs)
                    run["log_tail"] = None if "rate" in run else log.read_text()[-1500:]
        except Exception as exc:  # an API that differs, a schema error: say exactly what
            run["error"] = f"{type(exc).__name__}: {exc}"
        out["runs"].append(run)
    return out


# ---- 3) seal -> acknowledged lag -----------------------------------------------------------------

async def paced_client(cfg: dict) -> dict:
    """Open loop: request k is due at start + k / rate, sent on the first free connection of a pool."""
    payloads = []
    for key, outlet in cfg["targets"]:
        body = seal_bench.INVOICE.replace("OUTLET_ID", outlet).encode()
        payloads.append(f"POST /v1/invoices HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                        f"Authorization: Bearer {key}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    rate, total = cfg["rate"], int(cfg["rate"] * cfg["duration"])
    slots, lat, st = iter(range(total)), [], {"statuses": {}, "late": 0, "errors": 0, "sample": ""}
    start = time.perf_counter() + 0.1

    async def connection() -> None:
        reader = writer = None
        last = 0.0
        for k in slots:
            delay = start + k / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.1:
                st["late"] += 1  # no free connection when it was due: the server is behind
            if writer is not None and time.perf_counter() - last > 2:  # uvicorn drops keep-alives idle 5 s
                writer.close()
                writer = None
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", cfg["port"])
                t0 = time.perf_counter()
                writer.write(payloads[k % len(payloads)])
                status, body, close = await _read_response(reader)
                last = time.perf_counter()
                lat.append(last - t0)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                st["errors"] += 1
                writer = None
                continue
            st["statuses"][str(status)] = st["statuses"].get(str(status), 0) + 1
            if status != 201 and not st["sample"]:
                st["sample"] = f"{status} {body[:300].decode(errors='replace')}"
            if close:
                writer.close()
                writer = None

    await asyncio.gather(*(connection() for _ in range(cfg["connections"])))
    seconds, lat = time.perf_counter() - start, sorted(lat)
    pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else 0.0  # noqa: E731
    return {"sent": total, "seconds": seconds, "sealed": st["statuses"].get("201", 0), "p50_ms": pct(0.5),
            "p99_ms": pct(0.99), **st}


def run_client(cfg: dict) -> dict:
    return json.loads(subprocess.run([sys.executable, str(Path(__file__).resolve()), "--paced-client"],
                                     input=json.dumps(cfg), capture_output=True, text=True, check=True).stdout)


LAG_SQL = """WITH s AS (SELECT extract(epoch FROM a.created_at - i.issued_at) AS lag, a.created_at AS a_at,
  i.issued_at AS i_at FROM invoices i JOIN authority_acks a ON a.tenant_id = i.tenant_id AND a.invoice_id = i.id
  WHERE i.issued_at >= %(f)s AND i.issued_at < %(t)s), b AS (SELECT min(i_at) AS lo, max(i_at) AS hi FROM s)
  SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY lag), percentile_cont(0.99) WITHIN GROUP (ORDER BY lag),
  max(lag), min(a_at), max(a_at), percentile_cont(0.5) WITHIN GROUP (ORDER BY lag) FILTER (WHERE i_at <= lo + (hi - lo)
  / 4), percentile_cont(0.5) WITHIN GROUP (ORDER BY lag) FILTER (WHERE i_at >= hi - (hi - lo) / 4) FROM s, b"""
UNSYNCED_SQL = """SELECT count(*) FROM invoices i WHERE NOT EXISTS (SELECT 1 FROM invoice_sync s
  WHERE s.tenant_id = i.tenant_id AND s.invoice_id = i.id AND s.status <> 'pending')"""


def query(dsn: str, sql: str, params: dict | None = None) -> tuple:
    for attempt in range(60):  # the PostgreSQL is shared: "too many clients" passes when a neighbour's tests end
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                return conn.execute(sql, params).fetchone()
        except psycopg.OperationalError:
            if attempt == 59:
                raise
            time.sleep(1)


def wait_synced(dsn: str, timeout: float) -> tuple[int, dict]:
    """Until every invoice is acknowledged (or failed), or timeout; (unsynced, sync rows by status)."""
    deadline = time.monotonic() + timeout
    while (left := query(dsn, UNSYNCED_SQL)[0]) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left, query(dsn, "SELECT json_object_agg(status, n) FROM (SELECT status, count(*) AS n FROM invoice_sync "
                            "GROUP BY status) s")[0] or {}  # psycopg hands json back as a dict


def start_simulator(tmp: Path, devices: list[str]) -> tuple[subprocess.Popen, str]:
    """`stalela simulate dgi` with devices NIM<d>:tok<d>; (process, base URL)."""
    sim_log = tmp / "simulator.log"
    sim = spawn([str(STALELA), "simulate", "dgi", "--port", "0",
                 *[a for d in devices for a in ("--device", f"NIM{d}:tok{d}")]], None, sim_log)
    deadline = time.monotonic() + 30
    while "listening http" not in sim_log.read_text():
        if sim.poll() is not None or time.monotonic() > deadline:
            stop([sim])
            raise RuntimeError(f"simulator did not start: {sim_log.read_text()[-1000:]}")
        time.sleep(0.1)
    return sim, sim_log.read_text().split("listening ", 1)[1].split()[0]


def make_targets(srv, sim_url: str, tenants: int, outlets: int) -> list[tuple[str, str]]:
    """(api key, outlet id) per outlet, each outlet with its simulator device NIM<t>x<o>; several tenants, as
    each tenant's seals share its Merkle log lock."""
    def call(expect: int, method: str, path: str, token: str, body: dict) -> dict:
        status, answer = seal_bench.api(srv.base, method, path, token, body)
        assert status == expect, (method, path, status, answer)
        return answer

    targets = []
    for t in range(tenants):
        key = call(201, "POST", "/v1/tenants", srv.token, {"name": f"Sync {t}", "tax_id": f"S{t}"})["api_key"]
        for o in range(outlets):
            outlet = call(201, "POST", "/v1/outlets", key, {"code": f"S{o}", "name": f"Sync {t}.{o}"})["id"]
            call(200, "PUT", f"/v1/outlets/{outlet}/authority-device", key,
                 {"nim": f"NIM{t}x{o}", "base_url": sim_url, "token": f"tok{t}x{o}"})
            targets.append((key, outlet))
    return targets


def bench_lag(args: argparse.Namespace, tmp: Path) -> dict:
    os.environ["STALELA_INPROCESS_WORKERS"] = "false"  # seal.py's Server passes its environment on
    os.environ["STALELA_BACKGROUND_WORKERS"] = "0"  # nor a supervised background process (serve starts one by default)
    os.environ["STALELA_WEBHOOKS_ALLOW_PRIVATE"] = "true"  # the simulator listens on loopback
    out: dict = {"tenants": args.tenants, "outlets_per_tenant": args.outlets, "stalela_workers": 2,
                 "worker_batch": args.sync_batch, "steps": []}
    workers: list[subprocess.Popen] = []
    sim, sim_url = start_simulator(tmp, [f"{t}x{o}" for t in range(args.tenants) for o in range(args.outlets)])
    try:
        with seal_bench.Server(1, 64) as srv:
            targets = make_targets(srv, sim_url, args.tenants, args.outlets)
            wlog = tmp / "sync-workers.log"
            workers = [spawn([str(STALELA), "worker", "--concurrency", "8"],
                             worker_env(srv.dsn, srv.tmp, args.sync_batch), wlog) for _ in range(2)]
            try:
                out["steps"] = lag_steps(args, srv, [srv.proc, *workers, sim], targets)
            finally:
                stop(workers)  # before the Server drops their database
            out["worker_log_errors"] = log_errors(wlog)
        out["server_log_errors"] = srv.log_problems()[:5]
    finally:
        stop(workers + [sim])
    return out


def lag_steps(args: argparse.Namespace, srv, procs: list[subprocess.Popen], targets: list) -> list[dict]:
    """Seal at the target rate; while not sustained, step down to 90 % of what both sides kept up with."""
    base, steps, rate = {"port": srv.port, "targets": targets, "connections": 64}, [], float(args.rate)
    run_client(base | {"rate": 20, "duration": 2})  # warm-up: imports, pools, prepared statements
    wait_synced(srv.dsn, 60)
    for _ in range(3):
        print(f"lag: sealing at {rate:.0f}/s for {args.duration:.0f} s over {len(targets)} outlets ...", flush=True)
        t_from, ticks0, busy0 = dt.datetime.now(UTC), [seal_bench.cpu_ticks(p.pid, srv.db) for p in procs], \
            seal_bench.machine_busy()
        sampler = seal_bench.WaitSampler(seal_bench.PG_ADMIN, srv.db)
        sampler.start()
        client = run_client(base | {"rate": rate, "duration": args.duration})
        ticks1, busy1 = [seal_bench.cpu_ticks(p.pid, srv.db) for p in procs], seal_bench.machine_busy()
        t_to, waits, secs = dt.datetime.now(UTC), sampler.result(), (dt.datetime.now(UTC) - t_from).total_seconds()
        backlog = query(srv.dsn, "SELECT count(*) FROM outbox WHERE status = 'pending'")[0]  # not yet handled
        cpu = {name: round(seal_bench.cores(a["server"], b["server"], secs), 2)
               for name, a, b in zip(["server", "worker1", "worker2", "simulator"], ticks0, ticks1)}
        cpu["postgres"] = round(seal_bench.cores(ticks0[0]["postgres"], ticks1[0]["postgres"], secs), 2)
        cpu["box"] = round((busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1]), 2)
        cpu["others"] = round(cpu["box"] * os.cpu_count() - sum(v for k, v in cpu.items() if k != "box"), 2)
        left, by_status = wait_synced(srv.dsn, 300)
        n, p50, p99, mx, a_first, a_last, early, late = query(srv.dsn, LAG_SQL, {"f": t_from, "t": t_to})
        acked_in = query(srv.dsn, "SELECT count(*) FROM authority_acks WHERE created_at >= %(f)s AND "
                         "created_at < %(t)s", {"f": t_from, "t": t_to})[0]
        # CPU ms per invoice, which the neighbours hardly change: seal = server per sealed, sync = workers and
        # simulator per acknowledged in the window, PostgreSQL (both) per sealed; then what idle cores could do.
        per = lambda cores, count: round(cores * secs / max(1, count) * 1000, 1)  # noqa: E731
        cost = {"seal": per(cpu["server"], client["sealed"]), "sync": per(cpu["worker1"] + cpu["worker2"], acked_in),
                "simulator": per(cpu["simulator"], acked_in), "postgres": per(cpu["postgres"], client["sealed"])}
        cost["ceiling_per_s"] = round(os.cpu_count() * 1000 / max(1e-9, sum(cost.values())), 1)
        achieved, drain_s = client["sealed"] / client["seconds"], (a_last - t_to).total_seconds() if a_last else None
        sync_rate = n / (a_last - a_first).total_seconds() if n > 1 else 0.0
        step = {"target_rate": rate, "achieved_rate": achieved, "sync_rate": sync_rate, "acknowledged": n,
                "lag_p50_ms": (p50 or 0) * 1000, "lag_p99_ms": (p99 or 0) * 1000, "lag_max_ms": (mx or 0) * 1000,
                "lag_p50_first_quarter_ms": (early or 0) * 1000, "lag_p50_last_quarter_ms": (late or 0) * 1000,
                "drain_s": drain_s, "backlog_at_end": backlog, "unsynced": left, "sync_status": by_status, "cpu": cpu,
                "cpu_ms_per_invoice": cost, "pg_backends": waits, "client": client,
                "errors": client["errors"] + sum(v for k, v in client["statuses"].items() if k != "201")
                + left + by_status.get("failed", 0)}
        # Kept up: the seals went out on time, the sync finished soon after, and the lag did not grow.
        step["sustained"] = (achieved >= 0.95 * rate and client["late"] <= 0.02 * client["sent"]
                             and drain_s is not None and drain_s <= max(2.0, 0.1 * args.duration)
                             and (late or 0) <= 2 * (early or 0) + 0.5)
        steps.append(step)
        if step["sustained"] or step["errors"]:
            break
        rate = round(0.9 * min(achieved, sync_rate or achieved))  # the highest rate both sides kept up with
    return steps


# ---- report ------------------------------------------------------------------------------------

def fmt_waits(w: dict) -> str:
    return "  ".join(f"{k} {v:.1f}" for k, v in w.items())


def print_report(info: dict, outbox: list[dict], proc: dict, lag: dict) -> dict:
    print(f"\nsync bench  {info['cpu_count']} CPUs  python {info['python']}  postgres {info['postgres_version']}  "
          f"fsync={info['fsync']}  synchronous_commit={info['synchronous_commit']}  "
          f"commit={(info['git_commit'] or '?')[:10]}")
    head = f"{'system':<22} {'wrk':>3} {'batch':>5} {'n':>7} {'events/s':>9} {'steady/s':>9} {'start s':>7} " \
           f"{'wrk cpu':>7} {'pg cpu':>6} {'cpu us/ev':>9} {'other':>5} {'box':>5}"
    print(head + "\n" + "-" * len(head))
    rows = [("stalela outbox", r["workers"], r["batch"], r["events"], r) for r in outbox] + \
           [(f"procrastinate c={r['concurrency']}", 1, "-", r["jobs"], r) for r in proc.get("runs", [])]
    for name, workers, batch, n, r in rows:
        print(f"{name:<22} {workers:>3} {batch:>5} {n:>7} " + (
            f"{r['rate']:>9.0f} {r['steady_rate']:>9.0f} {r['startup_s']:>7.1f} {r['worker_cpu']:>7.2f} "
            f"{r['postgres_cpu']:>6.2f} {r['cpu_us_per_event']:>9.0f} {r['other_cpu']:>5.2f} {r['machine_busy']:>5.0%}"
            f"\n{'':>24}backends on average: {fmt_waits(r['pg_backends'])}" if "rate" in r
            else f" ERROR {r.get('error', '')[:300]}"))
    if proc.get("skipped"):
        print(f"procrastinate: skipped ({proc['skipped']})")
    ratios = {}
    ours = next((r for r in outbox if r["workers"] == 1 and r["batch"] == info["batch"] and "rate" in r), None)
    for r in [r for r in proc.get("runs", []) if ours and "rate" in r]:
        ratio = ratios[f"c{r['concurrency']}"] = {
            "steady": ours["steady_rate"] / r["steady_rate"], "total": ours["rate"] / r["rate"],
            "cpu": r["cpu_us_per_event"] / ours["cpu_us_per_event"]}
        print(f"ratio stalela (1 worker, batch {info['batch']}) / procrastinate (1 worker, concurrency "
              f"{r['concurrency']}): {ratio['steady']:.1f}x steady, {ratio['total']:.1f}x with start-up, "
              f"{ratio['cpu']:.1f}x less CPU per event  (goal >= 20x)")
    if lag.get("error"):
        print(f"\nseal -> acknowledged lag: ERROR {lag['error']}")
    if "steps" in lag:
        print(f"\nseal -> acknowledged lag: {lag['stalela_workers']} workers (batch {lag['worker_batch']}), "
              f"{lag['tenants']} tenants x {lag['outlets_per_tenant']} outlets")
        head = f"{'target/s':>8} {'sealed/s':>8} {'synced/s':>8} {'acked':>6} {'p50 ms':>8} {'p99 ms':>8} " \
               f"{'max ms':>8} {'drain s':>7} {'backlog':>7} {'seal p99':>8} {'late':>5} {'errors':>6}  sustained"
        print(head + "\n" + "-" * len(head))
    for s in lag.get("steps", []):
        c, cost = s["client"], s["cpu_ms_per_invoice"]
        print(f"{s['target_rate']:>8.0f} {s['achieved_rate']:>8.1f} {s['sync_rate']:>8.1f} {s['acknowledged']:>6} "
              f"{s['lag_p50_ms']:>8.0f} {s['lag_p99_ms']:>8.0f} {s['lag_max_ms']:>8.0f} {s['drain_s'] or 0:>7.1f} "
              f"{s['backlog_at_end']:>7} {c['p99_ms']:>8.0f} {c['late']:>5} {s['errors']:>6}  "
              f"{'yes' if s['sustained'] else 'NO'} (p50 {s['lag_p50_first_quarter_ms']:.0f} ms in the first "
              f"quarter, {s['lag_p50_last_quarter_ms']:.0f} in the last)")
        print(f"{'':>9}cores: {'  '.join(f'{k} {v}' for k, v in s['cpu'].items())};  "
              f"backends: {fmt_waits(s['pg_backends'])}")
        print(f"{'':>9}CPU ms per invoice: seal {cost['seal']} (server), sync {cost['sync']} (workers), simulator "
              f"{cost['simulator']}, postgres {cost['postgres']}: at most ~{cost['ceiling_per_s']:.0f}/s on "
              f"{os.cpu_count()} idle cores")
        if s["errors"]:
            print(f"{'':>9}statuses {c['statuses']}, socket errors {c['errors']}, sync {s['sync_status']}, "
                  f"unsynced {s['unsynced']}; sample: {c['sample'][:300]}")
    for line in lag.get("worker_log_errors", [])[:3] + lag.get("server_log_errors", [])[:3]:
        print(f"  log: {line[:300]}")
    print("events/s = N / (spawn -> all done); steady/s from the first done; cpu us/ev = workers + backends CPU per "
          "event, steady window; late = seals sent >100 ms after due; drain = last ack - end of sealing")
    return ratios


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--paced-client"]:  # the load generator, in a process of its own (run_client)
        import uvloop  # the server's loop too (uvicorn[standard]); cuts the client's CPU per request
        print(json.dumps(uvloop.run(paced_client(json.load(sys.stdin)))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5k events, 1k jobs, 5 s of sealing at 50/s")
    parser.add_argument("--events", type=int, help="outbox events per run (default 50,000)")
    parser.add_argument("--batch", type=int, default=500, help="STALELA_OUTBOX_BATCH_SIZE (default 500)")
    parser.add_argument("--jobs", type=int, help="procrastinate jobs (default 5,000)")
    parser.add_argument("--rate", type=float, help="target seals/s (default 200)")
    parser.add_argument("--duration", type=float, help="seconds of sealing (default 20)")
    parser.add_argument("--tenants", type=int, default=4, help="tenants sealing (default 4)")
    parser.add_argument("--outlets", type=int, default=2, help="outlets (devices) per tenant (default 2)")
    parser.add_argument("--sync-batch", type=int, default=100, help="worker batch size in the lag run (default 100)")
    parser.add_argument("--drain-invoices", type=int, help="invoices per drain run (default 400)")
    parser.add_argument("--drain-timeout", type=float, default=600, help="give up a drain run after (default 600 s)")
    parser.add_argument("--drain-backoff-cap", type=float, default=60,
                        help="STALELA_OUTBOX_BACKOFF_CAP_SECONDS of the drain workers (default 60)")
    parser.add_argument("--only", default="outbox,procrastinate,lag,drain", help="parts to run, comma-separated")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/<date>.json")
    args, _ = parser.parse_known_args(argv)  # bench/run.py passes every bench the same arguments
    for name, quick, full in (("events", 5_000, 50_000), ("jobs", 1_000, 5_000), ("rate", 50, 200),
                              ("duration", 5, 20), ("drain_invoices", 100, 400)):
        setattr(args, name, getattr(args, name) or (quick if args.quick else full))
    only = set(args.only.split(","))
    info = {"cpu_count": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            **seal_bench.pg_info(), "git_commit": seal_bench.git_commit(), "batch": args.batch,
            "date": dt.datetime.now(UTC).isoformat(timespec="seconds")}
    tmp = Path(tempfile.mkdtemp(prefix="stalela-bench-sync-"))
    outbox = bench_outbox(args, tmp) if "outbox" in only else []
    proc = bench_procrastinate(args, tmp) if "procrastinate" in only else {}
    try:
        lag = bench_lag(args, tmp) if "lag" in only else {}
    except Exception as exc:
        lag = {"error": f"{type(exc).__name__}: {exc}"}
    try:
        drain = bench_drain(args, tmp, sys.modules[__name__]) if "drain" in only else {}
    except Exception as exc:
        drain = {"error": f"{type(exc).__name__}: {exc}"}
    ratios = print_report(info, outbox, proc, lag)
    print_drain(drain)
    print(f"logs in {tmp}")
    if not args.no_save:
        seal_bench.RESULTS.mkdir(exist_ok=True)
        path = seal_bench.RESULTS / f"{dt.date.today().isoformat()}.json"
        data = json.loads(path.read_text()) if path.exists() else {}  # shared by every bench: keep the others
        section = data.setdefault("benches", {}).setdefault("sync", {})  # --only: the other parts stay
        for part, result in (("outbox", outbox), ("procrastinate", proc), ("lag", lag), ("drain", drain)):
            if part in only:
                section[part], section.setdefault("machine_by_part", {})[part] = result, info
        if {"outbox", "procrastinate"} <= only:
            section["ratio_vs_procrastinate"] = ratios
        path.with_suffix(".json.tmp").write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
        path.with_suffix(".json.tmp").replace(path)
        print(f"results written to {path.relative_to(seal_bench.ROOT)}")
    failed = [f"outbox {r['workers']}x{r['batch']}" for r in outbox if "error" in r or r["log_errors"]]
    failed += [f"procrastinate c={r['concurrency']}" for r in proc.get("runs", []) if "error" in r]
    failed += ["lag"] if lag.get("error") or lag.get("worker_log_errors") or lag.get("server_log_errors") or \
        any(s["errors"] for s in lag.get("steps", [])) else []
    failed += ["drain"] if drain.get("error") or drain.get("worker_log_errors") or drain.get("server_log_errors") or \
        any(not r["drained"] or r["duplicates"] or r["failed"] for r in drain.get("runs", [])) else []
    if failed:
        print(f"scenarios with errors: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
