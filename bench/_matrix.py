"""The comparison matrix of bench/targets.py: the same single seals under each topology, worker count and
tenancy, next to an independent plain FastAPI POST and to the server's own trivial POST.

  plain       bench/_plain_app.py under uvicorn with the same worker count: what a plain FastAPI service
              does with the same body (validation included), nothing of Stalela in the process
  noop        POST /_bench/noop on the server under test: Stalela's middleware, no database work
  seal NxM    POST /v1/invoices round-robin over N tenants x M outlets, each request with its tenant's key

A topology is chosen by the server's environment only, so the bench runs unchanged before and after a
change of the default (see TOPOLOGIES). Every seal run ends with the gap-free check of bench/seal.py, per
tenant.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).parent))
import seal  # noqa: E402
from _loadgen import run_load  # noqa: E402

# None unsets the variable: "default" is whatever `stalela serve` does with no override.
_DEFAULTS = {"STALELA_BACKGROUND_WORKERS": None, "STALELA_INPROCESS_WORKERS": None,
             "STALELA_SEALER_PROCESSES": None, "STALELA_SEAL_ROUTING": None}
TOPOLOGIES: dict[str, dict[str, str | None]] = {
    "default": dict(_DEFAULTS),
    # nothing drains the outbox: what the API processes alone cost
    "api-only": {**_DEFAULTS, "STALELA_BACKGROUND_WORKERS": "0", "STALELA_INPROCESS_WORKERS": "false"},
    # the alternatives of docs/performance.md, "Processes that cooperate": every API process seals what
    # it receives (no routing: their groups queue on the tenant's lock), and sealer processes that own
    # the tenants (the API processes hand them every seal)
    "no-routing": {**_DEFAULTS, "STALELA_SEAL_ROUTING": "false"},
    "sealer": {**_DEFAULTS, "STALELA_SEALER_PROCESSES": "1"},
    # every API worker also runs the background loops (the old default)
    "inprocess": {**_DEFAULTS, "STALELA_BACKGROUND_WORKERS": "0", "STALELA_INPROCESS_WORKERS": "true"},
}
TENANCIES: dict[str, tuple[int, int]] = {"1x16": (1, 16), "8x8": (8, 8)}


@dataclass
class Tenant:
    key: str
    outlets: list[str] = field(default_factory=list)


class PlainServer:
    """bench/_plain_app.py under uvicorn, started and stopped like seal.Server (no database)."""

    db = None

    def __init__(self, workers: int, concurrency: int):
        self.workers, self.concurrency = workers, concurrency
        self.port = seal.free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "PlainServer":
        self.log = tempfile.TemporaryFile("w+")
        # From the repository root so that `bench._plain_app` imports; uvicorn's defaults otherwise
        # (httptools and uvloop when installed), as `stalela serve` has them.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "bench._plain_app:app", "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", str(self.workers), "--no-access-log", "--log-level", "warning"],
            cwd=seal.ROOT, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        body = seal.BASELINE.replace("OUTLET_ID", "out_probe")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"plain app exited with {self.proc.returncode}:\n{self.log.read()[-3000:]}")
            try:
                if seal.api(self.base, "POST", "/invoices", None, json.loads(body))[0] == 201:
                    return self
            except (OSError, ValueError):
                pass
            time.sleep(0.2)
        raise RuntimeError("plain app not ready after 60 s")

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def setup_tenants(srv: seal.Server, tenants: int, outlets: int, prefix: str) -> list[Tenant]:
    """Tenants and outlets through the public API, as an integrator would create them."""
    out = []
    for t in range(tenants):
        status, created = seal.api(srv.base, "POST", "/v1/tenants", srv.token,
                                   {"name": f"Bench {prefix}{t + 1}", "tax_id": f"{prefix}{t + 1}", "jurisdiction": "CD"})
        assert status == 201, (status, created)
        tenant = Tenant(created["api_key"])
        for i in range(outlets):
            status, outlet = seal.api(srv.base, "POST", "/v1/outlets", tenant.key,
                                      {"code": f"{prefix}{i + 1}", "name": f"Till {i + 1}"})
            assert status == 201, (status, outlet)
            tenant.outlets.append(outlet["id"])
        out.append(tenant)
    return out


def _pairs(tenants: list[Tenant]) -> tuple[list[str], list[str]]:
    """(outlets, their keys), interleaved so that consecutive requests go to different tenants."""
    outlets, keys = [], []
    for j in range(max(len(t.outlets) for t in tenants)):
        for t in tenants:
            if j < len(t.outlets):
                outlets.append(t.outlets[j])
                keys.append(t.key)
    return outlets, keys


def outbox_counts(srv: seal.Server) -> dict[str, int]:
    with psycopg.connect(srv.dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT status, count(*) FROM outbox GROUP BY status").fetchall()
    return {status: n for status, n in rows}


def measure(srv, backend: str, *, path: str, body: str, duration: float, tenants: list[Tenant] = (),
            quiet_timeout: float = 30) -> dict:
    """One wrk (or asyncio client) run against `srv`, with the cores each side used and, for seals, the
    gap-free check of every tenant's outlets."""
    tenants = list(tenants)
    outlets, keys = _pairs(tenants) if tenants else ([], [])
    pending0 = outbox_counts(srv).get("pending", 0) if tenants else 0
    ticks0, busy0 = seal.cpu_ticks(srv.proc.pid, srv.db), seal.machine_busy()
    r = run_load(backend, host="127.0.0.1", port=srv.port, path=path, auth="", body=body, outlets=outlets,
                 auths=keys or None, concurrency=srv.concurrency, duration=duration)
    ticks1, busy1 = seal.cpu_ticks(srv.proc.pid, srv.db), seal.machine_busy()
    r["server_cpu"] = seal.cores(ticks0["server"], ticks1["server"], r["seconds"])
    r["postgres_cpu"] = seal.cores(ticks0["postgres"], ticks1["postgres"], r["seconds"])
    r["machine_busy"] = (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1])
    r["errors"] = r["socket_errors"] + sum(n for c, n in r["statuses"].items() if not c.startswith("2"))
    if tenants:
        pending1 = outbox_counts(srv).get("pending", 0)
    t0 = time.monotonic()
    if srv.db:
        # Until every session is idle: the requests cut at the deadline, and whatever background work
        # the topology does, so that the next run starts from the same state (bounded by quiet_timeout).
        seal.wait_quiet(srv, quiet_timeout)
    if tenants:
        # Then the outbox backlog, while something drains it (api-only: nothing does, and this stops
        # after a second); the wait counts in `settle_s`.
        pending, deadline = outbox_counts(srv).get("pending", 0), t0 + quiet_timeout
        while pending and time.monotonic() < deadline:
            time.sleep(1.0)
            pending, before = outbox_counts(srv).get("pending", 0), pending
            if pending >= before:
                break
        r["outbox"] = {"pending_start": pending0, "pending_end": pending1, "pending_settled": pending,
                       "settle_s": round(time.monotonic() - t0, 1)}
        r.update(gap_check(srv, tenants, r["created"]))
        del r["created"]  # one entry per outlet; the check's totals stay
    return r


def gap_check(srv: seal.Server, tenants: list[Tenant], created: dict[str, int]) -> dict:
    """seal.check_counters for each tenant with its own key: totals, and the outlets that failed."""
    totals = {"counter": 0, "created": 0, "cut": 0}
    failed = []
    for t, tenant in enumerate(tenants):
        for outlet, c in seal.check_counters(srv, tenant.key, tenant.outlets, created).items():
            for k in totals:
                totals[k] += c[k]
            if not c["ok"]:
                failed.append({"tenant": t + 1, "outlet": outlet, **c})
    return {"gap_free": not failed, "gap_failures": failed[:10], "counters": totals}


def _warm(srv, backend: str, tenants: list[Tenant], seconds: float) -> None:
    """First requests pay for imports, pool connections, prepared statements and each tenant's first
    seal (log head, keys) in every worker: not part of any measurement."""
    if seconds <= 0:
        return
    run_load(backend, host="127.0.0.1", port=srv.port, path="/_bench/noop", auth="", body=seal.BASELINE,
             outlets=[], concurrency=srv.concurrency, duration=seconds)
    outlets, keys = _pairs(tenants)
    run_load(backend, host="127.0.0.1", port=srv.port, path="/v1/invoices", auth="", body=seal.INVOICE,
             outlets=outlets, auths=keys, concurrency=srv.concurrency, duration=seconds)
    seal.wait_quiet(srv)


def plain_run(workers: int, args, backend: str) -> dict:
    with PlainServer(workers, args.concurrency) as plain:
        if args.warmup > 0:
            run_load(backend, host="127.0.0.1", port=plain.port, path="/invoices", auth="", body=seal.BASELINE,
                     outlets=[], concurrency=args.concurrency, duration=args.warmup)
        r = measure(plain, backend, path="/invoices", body=seal.BASELINE, duration=args.duration)
    r["workers"] = workers
    return r


def run_matrix(args, backend: str) -> dict:
    workers_list = [int(w) for w in args.matrix_workers.split(",")]
    out: dict = {"workers": workers_list, "topologies": args.topologies, "tenancies": args.tenancies,
                 "plain": {}, "runs": []}
    for w in workers_list:
        print(f"matrix: plain FastAPI, workers={w} ...", flush=True)
        out["plain"][str(w)] = plain_run(w, args, backend)
    for topology in args.topologies:
        for w in workers_list:
            print(f"matrix: {topology}, workers={w} ...", flush=True)
            with seal.Server(w, args.concurrency, env=TOPOLOGIES[topology]) as srv:
                groups = {name: setup_tenants(srv, *TENANCIES[name], prefix=f"{name.replace('x', 'X')}-")
                          for name in args.tenancies}
                # One extra outlet per tenant, sealed on only while warming.
                warm = [Tenant(t.key, [warm_outlet(srv, t.key)]) for g in groups.values() for t in g]
                _warm(srv, backend, warm, args.warmup)
                run = {"topology": topology, "workers": w,
                       "noop": measure(srv, backend, path="/_bench/noop", body=seal.BASELINE, duration=args.duration),
                       "seal": {}}
                for name, tenants in groups.items():
                    run["seal"][name] = measure(srv, backend, path="/v1/invoices", body=seal.INVOICE,
                                                duration=args.duration, tenants=tenants)
            problems = srv.log_problems()
            run["server_log_problems"] = len(problems)
            run["server_log_sample"] = problems[:3]
            run["server_log"] = str(srv.kept_log) if srv.kept_log else None
            out["runs"].append(run)
    add_ratios(out)
    return out


def warm_outlet(srv: seal.Server, key: str) -> str:
    status, outlet = seal.api(srv.base, "POST", "/v1/outlets", key, {"code": "WARM", "name": "Warm-up"})
    assert status == 201, (status, outlet)
    return outlet["id"]


def add_ratios(m: dict) -> None:
    """Each seal run's rate over the plain POST of its worker count and over its server's noop; for the
    largest worker count, its rate over the single worker's in the same topology and tenancy."""
    by_key = {(r["topology"], r["workers"]): r for r in m["runs"]}
    lo, hi = min(m["workers"]), max(m["workers"])
    for run in m["runs"]:
        plain = m["plain"].get(str(run["workers"]), {}).get("rps")
        run["noop"]["per_plain"] = run["noop"]["rps"] / plain if plain else None
        one = by_key.get((run["topology"], lo))
        if run["workers"] != lo and one:
            run["noop"]["scaling"] = run["noop"]["rps"] / one["noop"]["rps"] if one["noop"]["rps"] else None
        for name, r in run["seal"].items():
            r["per_plain"] = r["rps"] / plain if plain else None
            r["per_noop"] = r["rps"] / run["noop"]["rps"] if run["noop"]["rps"] else None
            if run["workers"] != lo and one and one["seal"].get(name, {}).get("rps"):
                r["scaling"] = r["rps"] / one["seal"][name]["rps"]
    if lo != hi and str(lo) in m["plain"] and str(hi) in m["plain"]:
        m["plain"][str(hi)]["scaling"] = m["plain"][str(hi)]["rps"] / m["plain"][str(lo)]["rps"]


def _fmt(v: float | None, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def print_matrix(m: dict, concurrency: int, duration: float) -> None:
    lo, hi = min(m["workers"]), max(m["workers"])
    print(f"\nmatrix  {concurrency} connections, {duration:g} s per run; /plain = seal req/s / plain FastAPI POST "
          f"req/s with the same workers; /noop = / the same server's /_bench/noop; {hi}w/{lo}w = / the same "
          f"row with {lo} worker(s)")
    header = (f"{'topology':<10} {'request':<12} {'wk':>2} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'/plain':>6} "
              f"{'/noop':>6} {f'{hi}w/{lo}w':>6} {'err':>4} {'gap-free':>8} {'srv cpu':>7} {'pg cpu':>6} "
              f"{'cli cpu':>7} {'box':>4} {'backlog':>7} {'settle':>6}")
    print(header)
    print("-" * len(header))

    def row(topology: str, request: str, w: int, r: dict, check: str = "") -> None:
        ob = r.get("outbox")
        outbox = f"{ob['pending_end'] - ob['pending_start']:>7} {ob['settle_s']:>5.1f}s" if ob else ""
        print(f"{topology:<10} {request:<12} {w:>2} {r['rps']:>8.0f} {r['p50_ms']:>7.1f} {r['p99_ms']:>7.1f} "
              f"{_fmt(r.get('per_plain')):>6} {_fmt(r.get('per_noop')):>6} {_fmt(r.get('scaling')):>6} "
              f"{r['errors']:>4} {check:>8} {r['server_cpu']:>7.2f} {r['postgres_cpu']:>6.2f} {r['client_cpu']:>7.2f} "
              f"{r['machine_busy']:>4.0%} {outbox}")
        if r["errors"]:
            print(f"{'':>14} statuses {r['statuses']}, socket errors {r['socket_errors']}; sample: {r['sample'][:300]}")
        for f in r.get("gap_failures", [])[:3]:
            print(f"{'':>14} gap check failed: tenant {f['tenant']} outlet {f['outlet']}: counter {f['counter']}, "
                  f"stored {f['stored']}, 201s {f['created']}")

    for w in m["workers"]:
        if str(w) in m["plain"]:
            row("plain", "FastAPI POST", w, m["plain"][str(w)])
    runs = sorted(m["runs"], key=lambda r: (m["topologies"].index(r["topology"]), r["workers"]))
    for topology in m["topologies"]:
        mine = [r for r in runs if r["topology"] == topology]
        for run in mine:
            row(topology, "noop", run["workers"], run["noop"])
        for name in m["tenancies"]:
            for run in mine:
                r = run["seal"][name]
                row(topology, f"seal {name}", run["workers"], r, "ok" if r["gap_free"] else "FAIL")
        for run in mine:
            if run["server_log_problems"]:
                print(f"{'':>14} server log ({topology}, {run['workers']} workers): {run['server_log_problems']} error "
                      f"lines, kept in {run['server_log']}; first: {run['server_log_sample'][0][:240]}")
    print("srv cpu = cores used by the server's whole process tree; pg cpu = its database's backends; cli cpu = the "
          "load generator; box = the whole machine busy\nbacklog = outbox events left pending by the run (0: the background "
          "work kept up; all of them with api-only); settle = seconds until every database session was idle and the backlog drained (if anything drains it)")
