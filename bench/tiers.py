"""Isolation tiers: what routing to dedicated databases costs a seal, moving a big tenant, and what idle
dedicated tenants hold.

Usage: .venv/bin/python bench/tiers.py [--tenants 50] [--duration 10] [--rounds 2] [--concurrency 32]
                                       [--move-invoices 1000000] [--idle-tenants 200] [--only routing,move,idle]
                                       [--no-save]

Every part runs the real `stalela serve` (1 API worker, 1 supervised background process) on a throwaway
PostgreSQL database; dedicated tenants get databases on the same server (template
postgresql://postgres@127.0.0.1:5432/{tenant}), all dropped at the end.
  routing  --tenants shared and --tenants dedicated tenants, one outlet each; seals/s round-robin over the
           shared tenants' outlets (each with its own API key), then over the dedicated ones, alternating
           --rounds times. ratio = dedicated / shared in the same server (target: >= 0.95, i.e. routing
           costs < 5 %). The no-op baseline of the same server shows the noise.
  move     one shared tenant with --move-invoices invoices (sealed through POST /v1/invoices/batch), moved to
           the dedicated tier through POST /v1/tenants/{id}/move while a light seal load runs throughout (the
           freeze included, in 5 s windows): seconds to completion, the freeze (from the signed receipt), the
           worker's peak memory above its level before the move, and the seals of the load (all must be 201).
  idle     --idle-tenants dedicated tenants provisioned, one seal each, then left idle past
           STALELA_DEDICATED_POOL_IDLE_SECONDS (5 s here): connections the server's processes hold, in total and
           to the dedicated databases (pg_stat_activity), against the control plane's own.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).parent))
import seal as seal_bench  # noqa: E402
from _loadgen import available_backend, run_load  # noqa: E402

PG_ADMIN = seal_bench.PG_ADMIN
TEMPLATE = "postgresql://postgres@127.0.0.1:5432/{tenant}"


def _env(idle: float = 60.0) -> dict[str, str]:
    # One connection per dedicated database and process, and a smaller control-plane pool (a dedicated
    # tenant's write holds one there too): 50 busy tenants in two processes stay within PostgreSQL's default
    # 100 connections (docs/operations.md, "Connections").
    return {"STALELA_DEDICATED_DATABASE_URL_TEMPLATE": TEMPLATE, "STALELA_DEDICATED_POOL_IDLE_SECONDS": str(idle),
            "STALELA_DEDICATED_POOL_SIZE": "1", "STALELA_DATABASE_POOL_SIZE": "8",
            "STALELA_BILLING_INTERVAL_SECONDS": "0", "STALELA_USAGE_AGGREGATION_SECONDS": "0"}


def _drop_dedicated(tenants: list[str]) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        for tenant in tenants:
            name = "stalela_" + tenant.lower()
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _tenant(srv: seal_bench.Server, tier: str, i: int) -> dict:
    status, body = seal_bench.api(srv.base, "POST", "/v1/tenants", srv.token,
                                  {"name": f"Bench {tier} {i}", "tax_id": f"B{i:06d}", "jurisdiction": "CD",
                                   "tier": tier})
    assert status in (201, 202), (status, body)
    return {"id": body["tenant"]["id"], "key": body["api_key"], "tier": tier}


def _wait_active(srv: seal_bench.Server, tenants: list[dict], timeout: float) -> float:
    started = time.monotonic()
    pending = {t["id"] for t in tenants}
    while pending:
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"{len(pending)} tenants still provisioning after {timeout} s")
        for tid in list(pending):
            status, body = seal_bench.api(srv.base, "GET", f"/v1/tenants/{tid}", srv.token)
            if status == 200 and body["status"] == "active":
                pending.discard(tid)
            elif status == 200 and body.get("provisioning", {}).get("status") == "failed":
                raise RuntimeError(f"provisioning of {tid} failed: {body['provisioning']}")
        time.sleep(0.5)
    return time.monotonic() - started


def _outlet(srv: seal_bench.Server, tenant: dict) -> None:
    status, body = seal_bench.api(srv.base, "POST", "/v1/outlets", tenant["key"], {"code": "B1", "name": "Bench"})
    assert status == 201, (status, body)
    tenant["outlet"] = body["id"]


def routing(args: argparse.Namespace, backend: str) -> dict:
    made: list[str] = []
    with seal_bench.Server(1, args.concurrency, env=_env()) as srv:
        try:
            shared = [_tenant(srv, "shared", i) for i in range(args.tenants)]
            dedicated = [_tenant(srv, "dedicated", i) for i in range(args.tenants)]
            made = [t["id"] for t in dedicated]
            provisioning_s = _wait_active(srv, dedicated, timeout=60 + 10 * args.tenants)
            for t in shared + dedicated:
                _outlet(srv, t)
            common = dict(host="127.0.0.1", port=srv.port, concurrency=args.concurrency)

            def load(group: list[dict], seconds: float) -> dict:
                before = _cpu_seconds(srv)
                r = run_load(backend, path="/v1/invoices", auth=group[0]["key"], body=seal_bench.INVOICE,
                             outlets=[t["outlet"] for t in group], auths=[t["key"] for t in group],
                             duration=seconds, **common)
                after = _cpu_seconds(srv)
                # CPU of the server's processes per sealed invoice, while the load ran: the request path
                # (API) and the outbox work it causes (background), which share this machine's cores.
                r["cpu_ms_per_seal"] = {role: round((after[role] - before.get(role, 0.0)) * 1000 / max(r["requests"], 1), 2)
                                        for role in after}
                return r

            load(shared, 2)  # warm-up: imports, pools, prepared statements (and one pool per dedicated database)
            load(dedicated, 2)
            seal_bench.wait_quiet(srv)
            rounds = []
            for _ in range(args.rounds):
                row = {"baseline": run_load(backend, path="/_bench/noop", auth="", body=seal_bench.BASELINE,
                                            outlets=[], duration=args.duration / 2, **common)["rps"]}
                for name, group in (("shared", shared), ("dedicated", dedicated)):
                    r = load(group, args.duration)
                    seal_bench.wait_quiet(srv)
                    errors = r["socket_errors"] + sum(n for c, n in r["statuses"].items() if not c.startswith("2"))
                    row[name] = {"rps": r["rps"], "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"], "errors": errors,
                                 "cpu_ms_per_seal": r["cpu_ms_per_seal"]}
                rounds.append(row)
        finally:
            _drop_dedicated(made)
    shared_rps = sum(r["shared"]["rps"] for r in rounds) / len(rounds)
    dedicated_rps = sum(r["dedicated"]["rps"] for r in rounds) / len(rounds)
    cpu = {name: {role: round(sum(r[name]["cpu_ms_per_seal"][role] for r in rounds) / len(rounds), 2)
                  for role in ("api", "background")} for name in ("shared", "dedicated")}
    return {"tenants": args.tenants, "provisioning_seconds": round(provisioning_s, 1), "rounds": rounds,
            "cpu_ms_per_seal": cpu,
            "shared_rps": round(shared_rps, 1), "dedicated_rps": round(dedicated_rps, 1),
            "ratio": round(dedicated_rps / shared_rps, 3) if shared_rps else 0.0}


def _fill(srv: seal_bench.Server, tenant: dict, invoices: int, concurrency: int = 4) -> float:
    """--move-invoices sealed invoices through the batch route (1,000 per request), a few requests at once."""
    body = json.loads(seal_bench.INVOICE.replace("OUTLET_ID", tenant["outlet"]))
    items = [{"invoice": body} for _ in range(1000)]
    started = time.monotonic()
    remaining = [invoices]
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                n = min(1000, remaining[0])
                remaining[0] -= n
            if n <= 0:
                return
            status, answer = seal_bench.api(srv.base, "POST", "/v1/invoices/batch", tenant["key"],
                                            {"items": items[:n]})
            assert status in (200, 201, 207), (status, str(answer)[:300])

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.monotonic() - started


def move(args: argparse.Namespace, backend: str) -> dict:
    made: list[str] = []
    with seal_bench.Server(1, args.concurrency, env=_env()) as srv:
        try:
            tenant = _tenant(srv, "shared", 0)
            made.append(tenant["id"])
            _outlet(srv, tenant)
            fill_s = _fill(srv, tenant, args.move_invoices)
            drain_s = _drain(srv)  # the move's job waits behind the sealed invoices' events otherwise
            seal_bench.wait_quiet(srv, timeout=600)
            worker = _worker_pid(srv)
            before = _rss_mb(worker)
            status, started_move = seal_bench.api(srv.base, "POST", f"/v1/tenants/{tenant['id']}/move",
                                                  srv.token, {"to": "dedicated"})
            assert status == 202, (status, started_move)
            started = time.monotonic()
            peak = before
            load: dict = {"requests": 0, "statuses": {}, "windows_p99_ms": []}
            done = threading.Event()

            def loader_run() -> None:
                # Windows of load until the move is over (at least --move-load-seconds): seals meet every
                # phase, the freeze included; a window's p99 shows the seals that waited for the switch.
                deadline = time.monotonic() + args.move_load_seconds
                while not done.is_set() or time.monotonic() < deadline:
                    window = run_load(backend, path="/v1/invoices", auth=tenant["key"], body=seal_bench.INVOICE,
                                      outlets=[tenant["outlet"]], concurrency=4, duration=5, host="127.0.0.1",
                                      port=srv.port)
                    load["requests"] += window["requests"]
                    for code, n in window["statuses"].items():
                        load["statuses"][code] = load["statuses"].get(code, 0) + n
                    load["windows_p99_ms"].append(round(window["p99_ms"], 1))

            loader = threading.Thread(target=loader_run)
            loader.start()
            while True:
                peak = max(peak, _rss_mb(worker), _peak_mb(worker))
                status, state = seal_bench.api(srv.base, "GET",
                                               f"/v1/tenants/{tenant['id']}/moves/{started_move['id']}", srv.token)
                if state["status"] != "running":
                    break
                time.sleep(0.25)
            seconds = time.monotonic() - started
            done.set()
            loader.join()
            receipt = (state.get("receipt") or {}).get("payload", {})
        finally:
            _drop_dedicated(made)
    statuses = load.get("statuses", {})
    return {"invoices": args.move_invoices, "fill_seconds": round(fill_s, 1), "drain_seconds": round(drain_s, 1), "status": state["status"],
            "error": state.get("error"), "seconds": round(seconds, 1), "freeze_ms": receipt.get("freeze_ms"),
            "freeze": receipt.get("freeze"), "phases": receipt.get("phases"),
            "worker_rss_before_mb": round(before, 1), "worker_rss_peak_mb": round(peak, 1),
            "peak_above_before_mb": round(peak - before, 1),
            "online_catch_up": receipt.get("online_catch_up"),
            "load_during_move": {"requests": load.get("requests"), "statuses": statuses,
                                 "p99_ms_max_window": max(load["windows_p99_ms"], default=None),
                                 "windows_p99_ms": load["windows_p99_ms"]},
            "roots_equal": receipt.get("from", {}).get("merkle") == receipt.get("to", {}).get("merkle")}


def _drain(srv: seal_bench.Server) -> float:
    """Mark the fill's outbox events done in SQL: the move's job would otherwise queue behind a million
    invoice.sealed events (webhooks, sync, metering), and what is measured is the move, not that backlog.
    The events are still copied by the move (the outbox is one of the tenant's tables)."""
    started = time.monotonic()
    dsn = PG_ADMIN.rsplit("/", 1)[0] + "/" + srv.db
    with psycopg.connect(dsn) as conn:
        conn.execute("SELECT set_config('stalela.platform', 'on', false)")
        conn.execute("UPDATE outbox SET status = 'done' WHERE status = 'pending' AND topic = 'invoice.sealed'")
    return time.monotonic() - started


def _worker_pid(srv: seal_bench.Server) -> int:
    """The supervised background process (the one that runs moves): the child of `serve` running
    `stalela worker`-like work, found by its command line."""
    tree = seal_bench.tree_rss_mb(srv.proc.pid)
    for pid in tree:
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        # By argument, not substring: the master's own command line has "--workers" in it (an earlier
        # version of this function measured the API master instead of the process running the move).
        if _is_background(args):
            return pid
    raise RuntimeError(f"no background process under the server {srv.proc.pid}: {sorted(tree)}")


def _is_background(args: list[bytes]) -> bool:
    """A supervised background process, by its arguments: not substrings (the master has "--workers")."""
    return b"serve" not in args and (b"worker" in args or b"background" in args)


def _cpu_seconds(srv: seal_bench.Server) -> dict[str, float]:
    """User + system CPU seconds of the server's processes so far, by role: "background" (the supervised
    background processes) and "api" (the master and everything else it runs)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {"api": 0.0, "background": 0.0}
    for pid in seal_bench.tree_rss_mb(srv.proc.pid):
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        role = "background" if _is_background(args) else "api"
        out[role] += (int(fields[11]) + int(fields[12])) / tick
    return out


def _peak_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM): nothing between two polls is missed."""
    return _rss_mb(pid, "VmHWM")


def _rss_mb(pid: int, field: str = "VmRSS") -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def idle(args: argparse.Namespace) -> dict:
    made: list[str] = []
    with seal_bench.Server(1, args.concurrency, env=_env(idle=2.0)) as srv:
        try:
            tenants = [_tenant(srv, "dedicated", i) for i in range(args.idle_tenants)]
            made = [t["id"] for t in tenants]
            provisioning_s = _wait_active(srv, tenants, timeout=120 + 10 * args.idle_tenants)
            for t in tenants:
                _outlet(srv, t)
                status, body = seal_bench.api(srv.base, "POST", "/v1/invoices", t["key"],
                                              json.loads(seal_bench.INVOICE.replace("OUTLET_ID", t["outlet"])))
                assert status == 201, (status, body)
                time.sleep(0.1)  # the setup, not what is measured: ~10 tenants/s keeps pools within 100 connections
            busy = _connections(srv.db, made)
            time.sleep(20)  # past the 5 s idle time, the janitor's pass and the pollers' back-off
            quiet = _connections(srv.db, made)
        finally:
            _drop_dedicated(made)
    return {"tenants": args.idle_tenants, "provisioning_seconds": round(provisioning_s, 1),
            "right_after_use": busy, "idle": quiet}


def _connections(control_db: str, tenants: list[str]) -> dict:
    names = ["stalela_" + t.lower() for t in tenants]
    with psycopg.connect(PG_ADMIN) as conn:
        rows = conn.execute("SELECT datname, count(*) FROM pg_stat_activity WHERE datname = ANY(%s) "
                            "GROUP BY datname", ([control_db, *names],)).fetchall()
    per = dict(rows)
    dedicated = sum(n for name, n in per.items() if name != control_db)
    return {"control_plane": per.get(control_db, 0), "dedicated_total": dedicated,
            "dedicated_databases_with_a_connection": sum(1 for name in per if name != control_db)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenants", type=int, default=50)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--move-invoices", type=int, default=1_000_000)
    parser.add_argument("--move-load-seconds", type=float, default=10)
    parser.add_argument("--idle-tenants", type=int, default=200)
    parser.add_argument("--only", default="routing,move,idle")
    parser.add_argument("--client", default="auto", choices=["auto", "wrk", "python"])
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    backend = available_backend(args.client)
    parts = set(args.only.split(","))
    results: dict = {"machine": seal_bench.pg_info(), "commit": seal_bench.git_commit()}
    if "routing" in parts:
        results["routing"] = routing(args, backend)
        print(json.dumps({"routing": results["routing"]}, indent=1), flush=True)
    if "move" in parts:
        results["move"] = move(args, backend)
        print(json.dumps({"move": results["move"]}, indent=1), flush=True)
    if "idle" in parts:
        results["idle"] = idle(args)
        print(json.dumps({"idle": results["idle"]}, indent=1), flush=True)
    if not args.no_save:
        seal_bench.RESULTS.mkdir(exist_ok=True)
        path = seal_bench.RESULTS / f"{time.strftime('%Y-%m-%d')}.json"
        data = json.loads(path.read_text()) if path.exists() else {}
        data.setdefault("benches", {})["tiers"] = results
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
        tmp.replace(path)
        print(f"results written to {path.relative_to(seal_bench.ROOT)}")
    failed = results.get("move", {}).get("status") not in (None, "completed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
