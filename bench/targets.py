"""The sealing targets in one run: peak single seals, p99 at half the peak, batch sealing, the HSM
signer against the software one, and the server's memory.

Usage: .venv/bin/python bench/targets.py [--duration 10] [--concurrency 64] [--batch-size 1000]
                                         [--batch-clients 2] [--rss-seconds 60] [--no-hsm] [--no-save]

One server per signer on a throwaway PostgreSQL database (fsync and synchronous_commit as configured,
on by default), driven from other processes:
  baseline     POST /_bench/noop with an invoice-sized body (wrk, --concurrency connections)
  seal-16      POST /v1/invoices round-robin over 16 outlets (wrk): the peak
  half-rate    open loop at half of seal-16's rate (a scheduled asyncio client, latency counted from
               the scheduled send time, so a stall is not hidden): p50/p99
  batch        POST /v1/invoices/batch, --batch-size invoices each with its own Idempotency-Key,
               --batch-clients at once: invoices/s, and the gap-free check
  rss          seal-16 load for --rss-seconds, the server's resident memory sampled every second
  hsm seal-16  the same as seal-16 on a second server whose signer is SoftHSM2 (PKCS#11)
Each figure is printed with its baseline and ratio; results go to bench/results/<date>.json.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import seal  # noqa: E402  (the seal bench's server, client and checks)
from _loadgen import available_backend, run_load  # noqa: E402

INVOICE_OBJ = json.loads(seal.INVOICE)


def tree_rss_mb(root_pid: int) -> dict[int, float]:
    """Resident memory (MB) of every process of the server's tree."""
    out: dict[int, float] = {}
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            status = (pid_dir / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        pid, ppid = int(pid_dir.name), int(fields.get("PPid", "0").strip() or 0)
        if pid == root_pid or ppid == root_pid:
            out[pid] = int(fields.get("VmRSS", "0 kB").split()[0]) / 1024
    return out


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.stop_flag, self.samples = pid, threading.Event(), []

    def run(self) -> None:
        while not self.stop_flag.wait(1.0):
            self.samples.append(tree_rss_mb(self.pid))

    def result(self) -> dict:
        self.stop_flag.set()
        self.join()
        if not self.samples:
            return {}
        peak = max(max(s.values(), default=0.0) for s in self.samples)
        return {"first_mb": max(self.samples[0].values(), default=0.0), "last_mb": max(self.samples[-1].values(), default=0.0),
                "max_mb": peak, "samples": len(self.samples)}


# ---- clients, each run in a process of its own ----------------------------------------------------

async def _open_loop(cfg: dict) -> dict:
    """Requests sent on a fixed schedule, whatever the answers do (no coordinated omission).

    Raw HTTP/1.1 on asyncio streams (the seal bench's client), not httpx, whose CPU per request would
    make the client, not the server, miss the schedule on a 2-core machine. A request goes out on an
    idle keep-alive connection, or a new one when all are busy.
    """
    from _loadgen import _read_response

    host, port = cfg["host"], cfg["port"]
    head = (f"POST /v1/invoices HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {cfg['auth']}\r\n")
    payloads = []
    for o in cfg["outlets"]:
        body = json.dumps({**INVOICE_OBJ, "outlet_id": o}).encode()
        payloads.append((o, (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body))
    rate, duration = cfg["rate"], cfg["duration"]
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    latencies, statuses, created = [], {}, {}

    async def exchange(payload: bytes) -> tuple[tuple, int, bool]:
        if idle:
            conn = idle.pop()
            try:
                conn[1].write(payload)
                return (conn, *(await _read_response(conn[0]))[::2])
            except (asyncio.IncompleteReadError, ConnectionError):
                conn[1].close()  # the server closed it while idle (keep-alive timeout): not an error
        conn = await asyncio.open_connection(host, port)
        conn[1].write(payload)
        return (conn, *(await _read_response(conn[0]))[::2])

    async def one(i: int, scheduled: float) -> None:
        outlet, payload = payloads[i % len(payloads)]
        conn, status, close = await exchange(payload)
        latencies.append(time.perf_counter() - scheduled)
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        if status == 201:
            created[outlet] = created.get(outlet, 0) + 1
        if close:
            conn[1].close()
        else:
            idle.append(conn)

    start, tasks, i = time.perf_counter(), [], 0
    while (scheduled := start + i / rate) < start + duration:
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, scheduled)))
        i += 1
    await asyncio.gather(*tasks)
    seconds = time.perf_counter() - start
    for _, writer in idle:
        writer.close()
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else 0.0  # noqa: E731
    return {"requests": len(latencies), "seconds": seconds, "rps": len(latencies) / seconds, "p50_ms": pick(0.5),
            "p99_ms": pick(0.99), "statuses": statuses, "created": created, "target_rps": rate}


async def _batches(cfg: dict) -> dict:
    import httpx

    headers = {"Authorization": f"Bearer {cfg['auth']}", "Content-Type": "application/json"}
    outlets, size = cfg["outlets"], cfg["size"]
    created: dict[str, int] = {}
    statuses: dict[str, int] = {}
    latencies, sealed = [], 0
    deadline = time.perf_counter() + cfg["duration"]
    async with httpx.AsyncClient(base_url=cfg["base"], headers=headers, timeout=300) as client:
        async def worker() -> None:
            nonlocal sealed
            while time.perf_counter() < deadline:
                items = [{"idempotency_key": uuid.uuid4().hex, "invoice": {**INVOICE_OBJ, "outlet_id": outlets[i % len(outlets)]}}
                         for i in range(size)]
                body = json.dumps({"items": items})
                t0 = time.perf_counter()
                r = await client.post("/v1/invoices/batch", content=body)
                latencies.append(time.perf_counter() - t0)
                statuses[str(r.status_code)] = statuses.get(str(r.status_code), 0) + 1
                if r.status_code == 200:
                    for item in r.json()["data"]:
                        if item["status"] == 201:
                            sealed += 1
                            o = item["invoice"]["outlet_id"]
                            created[o] = created.get(o, 0) + 1
        start = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(cfg["clients"])])
        seconds = time.perf_counter() - start
    latencies.sort()
    return {"batches": len(latencies), "invoices": sealed, "seconds": seconds, "invoices_per_s": sealed / seconds,
            "p50_ms": latencies[len(latencies) // 2] * 1000 if latencies else 0.0,
            "max_ms": latencies[-1] * 1000 if latencies else 0.0, "statuses": statuses, "created": created}


def _in_process(kind: str, cfg: dict) -> dict:
    import subprocess

    proc = subprocess.run([sys.executable, __file__, "--client", kind], input=json.dumps(cfg),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} client failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


# ---- SQL statements per seal, counted in-process -----------------------------------------------------

def count_statements() -> dict:
    """Statements each transaction sends, sealing through ``seal_many`` (what every seal runs) on a
    throwaway PostgreSQL database: one invoice alone, and groups of 50 over 1 and 16 outlets."""
    import psycopg
    from sqlalchemy import event

    from stalela.auth.principal import Principal
    from stalela.migrations import upgrade
    from stalela.db.session import Database
    from stalela.fiscal.invoices.schemas import InvoiceCreate
    from stalela.fiscal.invoices.sealing import SealRequest, seal_many
    from stalela.accounts import schemas as tenancy_schemas
    from stalela.accounts import service as tenancy
    from stalela.tenancy.context import bind_platform, bind_tenant
    from tests.conftest import make_settings

    name = f"stalela_bench_sql_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(seal.PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"

    async def run() -> dict:
        await upgrade(url)
        settings = make_settings(url, Path(tempfile.mkdtemp(prefix="stalela-bench-sql-")))
        db = Database.from_settings(settings)
        counted: list[str] = []
        event.listen(db.engine.sync_engine, "before_cursor_execute",
                     lambda conn, cursor, statement, *rest: counted.append(statement))
        try:
            async with db.transaction() as session:
                await bind_platform(session)
                tenant, _ = await tenancy.create_tenant(session, settings, tenancy_schemas.TenantCreate(
                    name="SQL count", tax_id="Q1"))
            principal = Principal(kind="api_key", tenant_id=tenant.id, tenant_status="active")
            async with db.transaction() as session:
                await bind_tenant(session, tenant.id)
                outlets = [(await tenancy.create_outlet(session, principal, tenancy_schemas.OutletCreate(
                    code=f"Q{i}", name="q"))).id for i in range(16)]
            bodies = [InvoiceCreate.model_validate({**INVOICE_OBJ, "outlet_id": o}) for o in outlets]

            async def group(n: int, spread: int) -> int:
                counted.clear()
                async with db.transaction() as session:
                    await bind_tenant(session, tenant.id)
                    await seal_many(session, settings, tenant.id,
                                    [SealRequest(principal, bodies[i % spread]) for i in range(n)])
                return len(counted) + 2  # BEGIN and COMMIT travel too (asyncpg sends them itself)

            for spread in (1, 16):  # warm: series and day rows exist, as in steady operation
                await group(spread, spread)
            return {"one_invoice": await group(1, 1), "group_50_one_outlet": await group(50, 1),
                    "group_50_16_outlets": await group(50, 16)}
        finally:
            await db.dispose()

    try:
        return asyncio.run(run())
    finally:
        with psycopg.connect(seal.PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---- the bench --------------------------------------------------------------------------------------

def _server_setup(srv: seal.Server, outlets: int) -> tuple[str, list[str]]:
    status, created = seal.api(srv.base, "POST", "/v1/tenants", srv.token,
                               {"name": "Bench SARL", "tax_id": "B123", "jurisdiction": "CD"})
    assert status == 201, (status, created)
    key = created["api_key"]
    ids = []
    for i in range(outlets):
        status, outlet = seal.api(srv.base, "POST", "/v1/outlets", key, {"code": f"T{i + 1}", "name": f"Till {i + 1}"})
        assert status == 201, (status, outlet)
        ids.append(outlet["id"])
    return key, ids


def _wrk(srv: seal.Server, backend: str, args: argparse.Namespace, path: str, key: str, body: str,
         outlets: list[str], duration: float) -> dict:
    ticks0 = seal.cpu_ticks(srv.proc.pid, srv.db)
    r = run_load(backend, host="127.0.0.1", port=srv.port, path=path, auth=key, body=body, outlets=outlets,
                 concurrency=args.concurrency, duration=duration)
    ticks1 = seal.cpu_ticks(srv.proc.pid, srv.db)
    r["server_cpu"] = seal.cores(ticks0["server"], ticks1["server"], r["seconds"])
    r["postgres_cpu"] = seal.cores(ticks0["postgres"], ticks1["postgres"], r["seconds"])
    r["errors"] = r["socket_errors"] + sum(n for c, n in r["statuses"].items() if not c.startswith("2"))
    seal.wait_quiet(srv)
    if outlets:
        checks = seal.check_counters(srv, key, outlets, r["created"])
        r["gap_free"] = all(c["ok"] for c in checks.values())
    return r


def run_signer(signer: str, args: argparse.Namespace, backend: str, full: bool) -> dict:
    out: dict = {"signer": signer}
    with seal.Server(args.workers, args.concurrency) as srv:
        # Separate outlets per scenario: the gap-free check compares each outlet's counter with the
        # 201s one scenario saw.
        key, outlets = _server_setup(srv, 1 + 16 * 4)
        warm, many, half_outlets, batch_outlets, rss_outlets = (
            outlets[:1], outlets[1:17], outlets[17:33], outlets[33:49], outlets[49:65])
        if args.warmup > 0:  # imports, pool connections, prepared statements
            run_load(backend, host="127.0.0.1", port=srv.port, path="/v1/invoices", auth=key, body=seal.INVOICE,
                     outlets=warm, concurrency=args.concurrency, duration=args.warmup)
        seal.wait_quiet(srv)
        rss = RssSampler(srv.proc.pid)
        rss.start()
        if full:
            out["baseline"] = _wrk(srv, backend, args, "/_bench/noop", "", seal.BASELINE, [], args.duration)
        out["seal"] = _wrk(srv, backend, args, "/v1/invoices", key, seal.INVOICE, many, args.duration)
        if full:
            half = out["seal"]["rps"] / 2
            r = _in_process("open-loop", {"host": "127.0.0.1", "port": srv.port, "auth": key,
                                          "outlets": half_outlets, "rate": half,
                                          "duration": args.duration})
            seal.wait_quiet(srv)
            r["gap_free"] = all(c["ok"] for c in seal.check_counters(srv, key, half_outlets, r["created"]).values())
            r["errors"] = sum(n for c, n in r["statuses"].items() if not c.startswith("2"))
            out["half_rate"] = r
            b = _in_process("batches", {"base": srv.base, "auth": key, "outlets": batch_outlets,
                                        "size": args.batch_size, "clients": args.batch_clients,
                                        "duration": args.duration})
            seal.wait_quiet(srv)
            b["gap_free"] = all(c["ok"] for c in seal.check_counters(srv, key, batch_outlets, b["created"]).values())
            b["errors"] = sum(n for c, n in b["statuses"].items() if c != "200")
            out["batch"] = b
            if args.rss_seconds > 0:
                out["rss_load"] = _wrk(srv, backend, args, "/v1/invoices", key, seal.INVOICE, rss_outlets,
                                       args.rss_seconds)
        out["rss"] = rss.result()
    out["server_log_problems"] = srv.log_problems()[:5]  # the log is read when the server stops
    return out


def _with_softhsm() -> dict[str, str] | None:
    from tests.support.softhsm import find_softhsm_library, init_softhsm_token

    if find_softhsm_library() is None:
        return None
    token = init_softhsm_token(Path(tempfile.mkdtemp(prefix="stalela-bench-hsm-")), label="bench", pin="bench-pin")
    return {"SOFTHSM2_CONF": str(token.conf_path), "STALELA_SIGNER_BACKEND": "pkcs11",
            "STALELA_PKCS11_LIBRARY": token.library_path, "STALELA_PKCS11_TOKEN_LABEL": token.token_label,
            "STALELA_PKCS11_PIN": token.pin}


def print_report(res: dict) -> None:
    sw = res["software"]
    base, peak = sw["baseline"], sw["seal"]
    print(f"\ntargets bench  inprocess_workers={res['inprocess_workers']}  workers={res['workers']}  concurrency={res['concurrency']}  duration={res['duration']}s  "
          f"fsync={res['machine']['fsync']}  synchronous_commit={res['machine']['synchronous_commit']}")
    rows = [
        ("trivial POST (baseline)", f"{base['rps']:.0f} req/s", "", ""),
        ("single seals, peak", f"{peak['rps']:.0f} /s", f"{peak['rps'] / base['rps']:.3f} of baseline",
         f"p99 {peak['p99_ms']:.0f} ms, gap-free {'ok' if peak.get('gap_free') else 'FAIL'}, errors {peak['errors']}"),
        ("p99 at half the peak", f"{sw['half_rate']['p99_ms']:.1f} ms",
         f"at {sw['half_rate']['rps']:.0f}/s (asked {sw['half_rate']['target_rps']:.0f})",
         f"p50 {sw['half_rate']['p50_ms']:.1f} ms, gap-free {'ok' if sw['half_rate']['gap_free'] else 'FAIL'}"),
        (f"batch sealing ({res['batch_size']}/batch)", f"{sw['batch']['invoices_per_s']:.0f} invoices/s",
         f"{sw['batch']['invoices_per_s'] / peak['rps']:.1f}x single seals",
         f"{sw['batch']['batches']} batches, p50 {sw['batch']['p50_ms']:.0f} ms, gap-free "
         f"{'ok' if sw['batch']['gap_free'] else 'FAIL'}"),
        ("server RSS", f"max {sw['rss'].get('max_mb', 0):.0f} MB",
         f"first {sw['rss'].get('first_mb', 0):.0f} MB, last {sw['rss'].get('last_mb', 0):.0f} MB",
         f"{sw['rss'].get('samples', 0)} samples over the whole run"),
    ]
    if res.get("hsm"):
        h = res["hsm"]["seal"]
        rows.append(("single seals, SoftHSM2 signer", f"{h['rps']:.0f} /s", f"{h['rps'] / peak['rps']:.2f} of software",
                     f"p99 {h['p99_ms']:.0f} ms, gap-free {'ok' if h.get('gap_free') else 'FAIL'}, errors {h['errors']}"))
    else:
        rows.append(("single seals, SoftHSM2 signer", "skipped", res.get("hsm_skipped", ""), ""))
    for name, fig, ratio, extra in rows:
        print(f"  {name:<34} {fig:>18}   {ratio:<28} {extra}")
    print(f"  server cpu at peak {peak['server_cpu']:.2f} cores, postgres {peak['postgres_cpu']:.2f} cores")
    sql = res.get("sql_statements_per_transaction")
    if sql:
        print(f"  SQL statements per transaction (BEGIN and COMMIT included): one invoice alone "
              f"{sql['one_invoice']}; a group of 50 on one outlet {sql['group_50_one_outlet']} "
              f"({sql['group_50_one_outlet'] / 50:.2f} per invoice); on 16 outlets {sql['group_50_16_outlets']} "
              f"({sql['group_50_16_outlets'] / 50:.2f} per invoice)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--batch-clients", type=int, default=2)
    parser.add_argument("--rss-seconds", type=float, default=30.0, help="extra seal load while memory is sampled")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--no-hsm", action="store_true")
    parser.add_argument("--no-save", action="store_true")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client:  # a load-generating child process
        cfg = json.loads(sys.stdin.read())
        fn = {"open-loop": _open_loop, "batches": _batches}[args.client]
        print(json.dumps(asyncio.run(fn(cfg))))
        return 0
    backend = available_backend("auto")
    # The production topology: API processes seal, `stalela worker` processes (not started here) drain
    # the outbox. With in-process workers the same server also syncs every sealed invoice, which
    # bench/sync.py measures on its own.
    os.environ.setdefault("STALELA_INPROCESS_WORKERS", "false")
    res = {"inprocess_workers": os.environ["STALELA_INPROCESS_WORKERS"], "workers": args.workers, "concurrency": args.concurrency, "duration": args.duration,
           "batch_size": args.batch_size, "machine": {**seal.pg_info(), "git_commit": seal.git_commit(),
                                                       "cpu_count": os.cpu_count()},
           "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    res["sql_statements_per_transaction"] = count_statements()
    print("software signer ...", flush=True)
    res["software"] = run_signer("software", args, backend, full=True)
    hsm_env = None if args.no_hsm else _with_softhsm()
    if hsm_env:
        print("SoftHSM2 signer ...", flush=True)
        saved = {k: os.environ.get(k) for k in hsm_env}
        os.environ.update(hsm_env)
        try:
            res["hsm"] = run_signer("pkcs11", argparse.Namespace(**{**vars(args), "rss_seconds": 0}), backend, full=False)
        finally:
            for k, v in saved.items():
                os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    else:
        res["hsm_skipped"] = "--no-hsm" if args.no_hsm else "SoftHSM2 not installed"
    print_report(res)
    if not args.no_save:
        seal.RESULTS.mkdir(exist_ok=True)
        path = seal.RESULTS / f"{dt.date.today().isoformat()}.json"
        data = json.loads(path.read_text()) if path.exists() else {}
        data.setdefault("benches", {})["targets"] = res
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        print(f"results written to {path.relative_to(seal.ROOT)}")
    sw = res["software"]
    bad = [n for n in ("seal", "half_rate", "batch") if sw[n].get("errors") or not sw[n].get("gap_free", True)]
    if res.get("hsm") and (res["hsm"]["seal"]["errors"] or not res["hsm"]["seal"].get("gap_free", True)):
        bad.append("hsm")
    if bad:
        print(f"scenarios with errors: {', '.join(bad)}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
