"""The sealing targets in one run: the comparison matrix, peak single seals, p99 at half the peak, batch
sealing, fairness between tenants, the HSM signer against the software one, and the server's memory.

Usage: .venv/bin/python bench/targets.py [--quick] [--duration 8] [--concurrency 64] [--workers 2]
           [--matrix/--no-matrix] [--topologies default,api-only,no-routing,sealer,inprocess] [--tenancies 1x16,8x8]
           [--matrix-workers 1,2] [--fairness/--no-fairness] [--fairness-rate 50] [--batch-size 1000]
           [--batch-clients 2] [--rss-seconds 30] [--no-hsm] [--no-save]

1. Matrix (bench/_matrix.py), one wrk run of --duration each, --concurrency connections: an independent
   plain FastAPI POST (bench/_plain_app.py, same body, pydantic models of its own) and, per topology x
   worker count, a fresh server: /_bench/noop, then single seals for each tenancy (1 tenant x 16
   outlets, 8 tenants x 8 outlets, each request with its tenant's key). Ratios to the plain POST of the
   same worker count, to the same server's noop, and 2 workers / 1 worker.
2. Targets, the default topology with --workers, one server per signer on a throwaway database:
  baseline     POST /_bench/noop with an invoice-sized body (wrk)
  seal-16      POST /v1/invoices round-robin over 16 outlets (wrk): the peak
  half-rate    open loop at half of seal-16's rate (latency counted from the scheduled send time, so a
               stall is not hidden): p50/p99
  batch        POST /v1/invoices/batch, --batch-size invoices each with its own idempotency key,
               --batch-clients at once: invoices/s
  fairness     tenant B seals one invoice at a time, open loop at --fairness-rate, alone and then while
               tenant A floods batches of --batch-size from --fairness-clients clients: B's p50/p99/max
  rss          seal-16 load for --rss-seconds; every process of the server's tree sampled every second
  hsm seal-16  the same as seal-16 on a second server whose signer is SoftHSM2 (PKCS#11)
Every seal scenario ends with the gap-free check of bench/seal.py. Results: bench/results/<date>.json.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import seal  # noqa: E402  (the seal bench's server, client and checks)
from _loadgen import available_backend, run_load  # noqa: E402
from _matrix import (TENANCIES, TOPOLOGIES, Tenant, gap_check, measure, plain_run, print_matrix,  # noqa: E402
                     run_matrix, setup_tenants)
from _targets_clients import INVOICE_OBJ, RssSampler, collect, run_client, spawn  # noqa: E402

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

def _quiet_check(srv: seal.Server, tenant: Tenant, r: dict, ok_status: str) -> dict:
    seal.wait_quiet(srv)
    r.update(gap_check(srv, [tenant], r["created"]))
    r["errors"] = sum(n for c, n in r["statuses"].items() if not c.startswith(ok_status))
    return r


def fairness(srv: seal.Server, args: argparse.Namespace, flood: Tenant, small: Tenant) -> dict:
    """Tenant B's single seals at a modest fixed rate, alone and then under tenant A's batch flood."""
    b_cfg = {"host": "127.0.0.1", "port": srv.port, "auth": small.key, "outlets": small.outlets,
             "rate": args.fairness_rate, "duration": args.duration}
    alone = run_client("open-loop", b_cfg)
    seal.wait_quiet(srv)
    lead = 2.0  # A's first batches are in the server before B's measurement starts
    a_proc = spawn("batches", {"base": srv.base, "auth": flood.key, "outlets": flood.outlets, "size": args.batch_size,
                               "clients": args.fairness_clients, "duration": args.duration + lead})
    time.sleep(lead)
    under = run_client("open-loop", b_cfg)
    a = collect(a_proc, "batches")
    seal.wait_quiet(srv)
    both = {o: alone["created"].get(o, 0) + under["created"].get(o, 0) for o in small.outlets}
    b_check = gap_check(srv, [small], both)
    out = {"rate": args.fairness_rate, "flood_clients": args.fairness_clients, "alone": alone, "under_flood": under,
           "flood": {**a, **gap_check(srv, [flood], a["created"])}, "small_gap_free": b_check["gap_free"],
           "small_gap_failures": b_check["gap_failures"]}
    out["errors"] = (sum(n for c, n in alone["statuses"].items() if c != "201")
                     + sum(n for c, n in under["statuses"].items() if c != "201")
                     + sum(n for c, n in a["statuses"].items() if c != "200"))
    out["gap_free"] = out["small_gap_free"] and out["flood"]["gap_free"]
    return out


def run_signer(signer: str, args: argparse.Namespace, backend: str, full: bool) -> dict:
    out: dict = {"signer": signer}
    with seal.Server(args.workers, args.concurrency, env=TOPOLOGIES["default"]) as srv:
        # Separate outlets per scenario: the gap-free check compares each outlet's counter with the
        # 201s one scenario saw.
        (main,) = setup_tenants(srv, 1, 1 + 16 * 5, "T")
        key, outlets = main.key, main.outlets
        warm, many, half, batch, rss_o, flood = (outlets[:1], *(outlets[1 + 16 * i:17 + 16 * i] for i in range(5)))
        if args.warmup > 0:  # imports, pool connections, prepared statements
            run_load(backend, host="127.0.0.1", port=srv.port, path="/v1/invoices", auth=key, body=seal.INVOICE,
                     outlets=warm, concurrency=args.concurrency, duration=args.warmup)
        seal.wait_quiet(srv)
        rss = RssSampler(srv.proc.pid)
        rss.start()
        if full:
            out["baseline"] = measure(srv, backend, path="/_bench/noop", body=seal.BASELINE, duration=args.duration)
        out["seal"] = measure(srv, backend, path="/v1/invoices", body=seal.INVOICE, duration=args.duration,
                              tenants=[Tenant(key, many)])
        if full:
            r = run_client("open-loop", {"host": "127.0.0.1", "port": srv.port, "auth": key, "outlets": half,
                                         "rate": out["seal"]["rps"] / 2, "duration": args.duration})
            out["half_rate"] = _quiet_check(srv, Tenant(key, half), r, "2")
            b = run_client("batches", {"base": srv.base, "auth": key, "outlets": batch, "size": args.batch_size,
                                       "clients": args.batch_clients, "duration": args.duration})
            out["batch"] = _quiet_check(srv, Tenant(key, batch), b, "200")
            if args.fairness:
                print("  fairness ...", flush=True)
                (small,) = setup_tenants(srv, 1, 4, "F")
                out["fairness"] = fairness(srv, args, Tenant(key, flood), small)
            if args.rss_seconds > 0:
                out["rss_load"] = measure(srv, backend, path="/v1/invoices", body=seal.INVOICE,
                                          duration=args.rss_seconds, tenants=[Tenant(key, rss_o)])
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


def target_checks(res: dict) -> list[tuple[str, str, str, bool | None]]:
    """(target, measured, goal, met) for each of the issue's targets that this run measured."""
    sw, w = res["software"], res["workers"]
    rows: list[tuple[str, str, str, bool | None]] = []
    peak, plain = sw["seal"]["rps"], res["plain"]["rps"]
    rows.append((f"single seals / plain FastAPI POST ({w} workers)", f"{peak / plain:.2f}", ">= 0.50", peak / plain >= 0.50))
    m = res.get("matrix")
    if m and len(m["workers"]) > 1:
        for run in m["runs"]:
            if run["topology"] == "default" and run["workers"] == max(m["workers"]):
                for name, r in run["seal"].items():
                    ok = r.get("scaling") is not None and r["scaling"] >= 1.0
                    rows.append((f"{max(m['workers'])} workers / {min(m['workers'])} (default, seal {name})",
                                 _f(r.get("scaling")), ">= 1.00", ok))
    if "half_rate" in sw:
        rows.append(("p99 at half the peak", f"{sw['half_rate']['p99_ms']:.1f} ms", "<= 50 ms", sw["half_rate"]["p99_ms"] <= 50))
        rows.append((f"batch sealing ({res['batch_size']}/batch)", f"{sw['batch']['invoices_per_s']:.0f}/s",
                     ">= 10,000/s", sw["batch"]["invoices_per_s"] >= 10_000))
    if sw.get("fairness"):
        p99 = sw["fairness"]["under_flood"]["p99_ms"]
        rows.append(("small tenant's p99 under a batch flood", f"{p99:.1f} ms", "<= 100 ms", p99 <= 100))
    peak_rss = sw["rss"].get("max_mb", 0.0)
    rows.append((f"server RSS per process ({sw['rss'].get('samples', 0)} s sampled)", f"{peak_rss:.0f} MB", "< 300 MB",
                 peak_rss < 300))
    gaps = gap_failures(res)
    rows.append(("gaps in every run", "0" if not gaps else f"{len(gaps)} runs failed", "0", not gaps))
    return rows


def _f(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def gap_failures(res: dict) -> list[str]:
    bad = []
    for name, r in _seal_runs(res):
        if not r.get("gap_free", True):
            bad.append(name)
    return bad


def _seal_runs(res: dict) -> list[tuple[str, dict]]:
    """Every scenario that sealed, named, with its errors and gap check."""
    runs = []
    for run in (res.get("matrix") or {}).get("runs", []):
        for name, r in run["seal"].items():
            runs.append((f"matrix {run['topology']} w{run['workers']} {name}", r))
    for signer in ("software", "hsm"):
        for name in ("seal", "half_rate", "batch", "fairness", "rss_load"):
            if (res.get(signer) or {}).get(name):
                runs.append((f"{signer} {name}", res[signer][name]))
    return runs


def print_report(res: dict) -> None:
    if res.get("matrix"):
        print_matrix(res["matrix"], res["concurrency"], res["duration"])
    sw = res["software"]
    base, peak, plain = sw["baseline"], sw["seal"], res["plain"]
    gap = lambda r: "ok" if r.get("gap_free") else "FAIL"  # noqa: E731
    print(f"\ntargets  default topology  workers={res['workers']}  concurrency={res['concurrency']}  "
          f"duration={res['duration']}s  fsync={res['machine']['fsync']}  "
          f"synchronous_commit={res['machine']['synchronous_commit']}  commit={(res['machine']['git_commit'] or '?')[:10]}")
    rows = [
        (f"plain FastAPI POST ({plain['workers']} workers)", f"{plain['rps']:.0f} req/s", "", f"p99 {plain['p99_ms']:.0f} ms"),
        ("trivial POST (/_bench/noop)", f"{base['rps']:.0f} req/s", f"{base['rps'] / plain['rps']:.2f} of plain", ""),
        ("single seals, peak", f"{peak['rps']:.0f} /s",
         f"{peak['rps'] / plain['rps']:.2f} of plain, {peak['rps'] / base['rps']:.2f} of noop",
         f"p99 {peak['p99_ms']:.0f} ms, gap-free {gap(peak)}, errors {peak['errors']}"),
        ("p99 at half the peak", f"{sw['half_rate']['p99_ms']:.1f} ms",
         f"at {sw['half_rate']['rps']:.0f}/s (asked {sw['half_rate']['target_rps']:.0f})",
         f"p50 {sw['half_rate']['p50_ms']:.1f} ms, gap-free {gap(sw['half_rate'])}"),
        (f"batch sealing ({res['batch_size']}/batch)", f"{sw['batch']['invoices_per_s']:.0f} invoices/s",
         f"{sw['batch']['invoices_per_s'] / peak['rps']:.1f}x single seals",
         f"{sw['batch']['batches']} batches, p50 {sw['batch']['p50_ms']:.0f} ms, gap-free {gap(sw['batch'])}"),
    ]
    if sw.get("fairness"):
        f = sw["fairness"]
        for label, r in (("alone", f["alone"]), ("under A's flood", f["under_flood"])):
            rows.append((f"tenant B {f['rate']:g}/s, {label}", f"p99 {r['p99_ms']:.1f} ms",
                         f"p50 {r['p50_ms']:.1f}, max {r['max_ms']:.0f} ms", f"{r['rps']:.0f}/s sealed"))
        rows.append(("  tenant A's flood", f"{f['flood']['invoices_per_s']:.0f} invoices/s",
                     f"{f['flood_clients']} clients x {res['batch_size']}",
                     f"gap-free A {gap(f['flood'])}, B {'ok' if f['small_gap_free'] else 'FAIL'}, errors {f['errors']}"))
    rows.append(("server RSS, largest process", f"max {sw['rss'].get('max_mb', 0):.0f} MB",
                 f"first {sw['rss'].get('first_mb', 0):.0f}, last {sw['rss'].get('last_mb', 0):.0f} MB",
                 f"{sw['rss'].get('samples', 0)} samples, {sw['rss'].get('processes', 0)} processes"))
    if res.get("hsm"):
        h = res["hsm"]["seal"]
        rows.append(("single seals, SoftHSM2 signer", f"{h['rps']:.0f} /s", f"{h['rps'] / peak['rps']:.2f} of software",
                     f"p99 {h['p99_ms']:.0f} ms, gap-free {gap(h)}, errors {h['errors']}"))
    else:
        rows.append(("single seals, SoftHSM2 signer", "skipped", res.get("hsm_skipped", ""), ""))
    for name, fig, ratio, extra in rows:
        print(f"  {name:<36} {fig:>18}   {ratio:<30} {extra}")
    print(f"  server cpu at peak {peak['server_cpu']:.2f} cores, postgres {peak['postgres_cpu']:.2f} cores")
    if sw["server_log_problems"]:
        print(f"  server log: error lines, first: {sw['server_log_problems'][0][:240]}")
    sql = res.get("sql_statements_per_transaction")
    if sql:
        print(f"  SQL statements per transaction (BEGIN and COMMIT included): one invoice alone "
              f"{sql['one_invoice']}; a group of 50 on one outlet {sql['group_50_one_outlet']} "
              f"({sql['group_50_one_outlet'] / 50:.2f} per invoice); on 16 outlets {sql['group_50_16_outlets']} "
              f"({sql['group_50_16_outlets'] / 50:.2f} per invoice)")
    print("\nissue 22 targets")
    for name, measured, goal, ok in target_checks(res):
        print(f"  {name:<52} {measured:>14}  {goal:<12} {'met' if ok else 'MISSED'}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="short runs (3 s, 1 s warm-up, 3 s of RSS load): a check that everything works")
    parser.add_argument("--duration", type=float, help="seconds per run (default 8; --quick 3)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers of the targets' server (default 2)")
    parser.add_argument("--matrix", action=argparse.BooleanOptionalAction, default=True,
                        help="the topology x workers x tenancy matrix (default on)")
    parser.add_argument("--topologies", default=",".join(TOPOLOGIES), help="matrix topologies, comma-separated")
    parser.add_argument("--tenancies", default=",".join(TENANCIES), help="matrix tenancies, comma-separated")
    parser.add_argument("--matrix-workers", default="1,2", help="matrix worker counts, comma-separated")
    parser.add_argument("--fairness", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--fairness-rate", type=float, default=50.0, help="tenant B's single seals per second")
    parser.add_argument("--fairness-clients", type=int, default=3, help="tenant A's concurrent batch clients")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--batch-clients", type=int, default=2)
    parser.add_argument("--rss-seconds", type=float, help="extra seal load while memory is sampled (default 30; --quick 3)")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up per server (default 2; --quick 1)")
    parser.add_argument("--client", choices=["auto", "wrk", "python"], default="auto",
                        help="load generator: wrk if on PATH (auto), else the asyncio client")
    parser.add_argument("--no-hsm", action="store_true")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    for name, normal, quick in (("duration", 8.0, 3.0), ("rss_seconds", 30.0, 3.0), ("warmup", 2.0, 1.0)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else normal)
    args.topologies = [t for t in args.topologies.split(",") if t]
    args.tenancies = [t for t in args.tenancies.split(",") if t]
    for t in args.topologies:
        if t not in TOPOLOGIES:
            parser.error(f"unknown topology {t!r}: {', '.join(TOPOLOGIES)}")
    for t in args.tenancies:
        if t not in TENANCIES:
            parser.error(f"unknown tenancy {t!r}: {', '.join(TENANCIES)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    backend = available_backend(args.client)
    overridden = [k for k in TOPOLOGIES["api-only"] if k in os.environ]
    if overridden:
        print(f"note: {', '.join(overridden)} set here; each topology sets its own", flush=True)
    started = time.monotonic()
    res = {"workers": args.workers, "concurrency": args.concurrency, "duration": args.duration, "client": backend,
           "batch_size": args.batch_size, "topology_env": {k: v for k, v in TOPOLOGIES.items()},
           "machine": {**seal.pg_info(), "git_commit": seal.git_commit(), "cpu_count": os.cpu_count()},
           "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    res["sql_statements_per_transaction"] = count_statements()
    if args.matrix:
        res["matrix"] = run_matrix(args, backend)
    plain = (res.get("matrix") or {}).get("plain", {}).get(str(args.workers))
    if plain is None:
        print(f"plain FastAPI, workers={args.workers} ...", flush=True)
        plain = plain_run(args.workers, args, backend)
    res["plain"] = plain
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
    res["targets"] = [{"target": n, "measured": m, "goal": g, "met": ok} for n, m, g, ok in target_checks(res)]
    res["seconds"] = round(time.monotonic() - started)
    print_report(res)
    print(f"whole run: {res['seconds']} s")
    if not args.no_save:
        seal.RESULTS.mkdir(exist_ok=True)
        path = seal.RESULTS / f"{dt.date.today().isoformat()}.json"
        data = json.loads(path.read_text()) if path.exists() else {}
        data.setdefault("benches", {})["targets"] = res
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        tmp.replace(path)
        print(f"results written to {path.relative_to(seal.ROOT)}")
    bad = [name for name, r in _seal_runs(res) if r.get("errors") or not r.get("gap_free", True)]
    bad += [f"plain w{w}" for w, r in (res.get("matrix") or {}).get("plain", {}).items() if r["errors"]]
    bad += [f"matrix {r['topology']} w{r['workers']} noop" for r in (res.get("matrix") or {}).get("runs", [])
            if r["noop"]["errors"]]
    if bad:
        print(f"scenarios with errors or gaps: {', '.join(bad)}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
