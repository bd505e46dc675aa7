"""Sealed invoices per second against PostgreSQL, as a ratio of a trivial POST on the same server.

Usage: .venv/bin/python bench/seal.py [--duration 10] [--concurrency 32] [--workers 1,2] [--outlets 16]
                                      [--client auto|wrk|python] [--warmup 2]

For each worker count: a throwaway database, the real `stalela serve` in its own process, a tenant
and its outlets through the public API, then three scenarios driven from another process:
  baseline     POST /_bench/noop with an invoice-sized JSON body
  seal-1       POST /v1/invoices, every request to one outlet (serializes on its counter row lock)
  seal-N       the same spread round-robin over N outlets (lock contention gone, commits remain)
The machine is noisy, so absolute rates drift between runs; the seal/baseline ratio, taken within
one run, is the figure to compare across commits. Exits 1 if any scenario had an error.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).parent))
from _loadgen import available_backend, run_load  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
INVOICE = ('{"outlet_id": "OUTLET_ID", "type": "FV", "lines": [{"description": "Sac de riz 25 kg", '
           '"item_type": "BIE", "tax_group": "B", "quantity": "2", "unit_price": "45000.00"}, '
           '{"description": "Livraison", "item_type": "SER", "tax_group": "A", "quantity": "1", '
           '"unit_price": "5000"}]}')
# The baseline parses a body of the same size and shape, so the ratio isolates the fiscal work
# (auth, validation, lock, signing, insert, commit), not JSON decoding or socket I/O.
BASELINE = INVOICE.replace("OUTLET_ID", "out_" + "0" * 26)


# ---- small helpers ------------------------------------------------------------------------------

def api(base: str, method: str, path: str, token: str | None = None, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _descendants(root_pid: int, parents: dict[int, int]) -> set[int]:
    """The root and every process below it, children of children included: uvicorn workers are
    children of the supervisor, and a background process may be a child of either."""
    tree, changed = {root_pid}, True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                changed = True
    return tree


def cpu_ticks(root_pid: int, db: str | None) -> dict[str, dict[int, int]]:
    """CPU ticks per pid of the server's process tree and of the PostgreSQL backends of its database.

    The tree (all levels) because uvicorn workers and background processes are descendants of the
    supervisor; the backends (their title names the database) because on this machine PostgreSQL
    competes with the server for the cores. Per pid, so that a process that ends between two samples
    does not make the difference negative. ``db`` None: a server with no database (the plain app).
    """
    stats: dict[int, tuple[int, int]] = {}
    backends: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                title = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            ticks = int(fields[11]) + int(fields[12])  # utime + stime
            stats[int(entry.name)] = (int(fields[1]), ticks)
            if db and title.startswith(b"postgres: ") and f" {db} ".encode() in title:
                backends[int(entry.name)] = ticks
    tree = _descendants(root_pid, {pid: ppid for pid, (ppid, _) in stats.items()})
    return {"server": {p: stats[p][1] for p in tree if p in stats}, "postgres": backends}


def tree_rss_mb(root_pid: int) -> dict[int, float]:
    """Resident memory (MB) of every process of the server's tree, all levels."""
    parents: dict[int, int] = {}
    rss: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        pid = int(entry.name)
        parents[pid] = int(fields.get("PPid", "0").strip() or 0)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0]) / 1024
    return {pid: rss[pid] for pid in _descendants(root_pid, parents) if pid in rss}


def cores(before: dict[int, int], after: dict[int, int], seconds: float) -> float:
    """Average cores used between two samples; a process born in between counts from zero."""
    ticks = sum(t - before.get(pid, 0) for pid, t in after.items())
    return ticks / os.sysconf("SC_CLK_TCK") / seconds if seconds else 0.0


def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from /proc/stat: shows whether the whole box was saturated."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


class WaitSampler(threading.Thread):
    """Samples what its database's backends wait on, 10 times a second, while a scenario runs.

    Averages per category say where a seal's time goes: "lock" = queued on a row lock (the outlet's
    counter, or any other row every seal updates), "wal" = flushing the commit (fsync), "run" = executing,
    "app" = idle in transaction, i.e. waiting for the Python server between two statements.
    """

    def __init__(self, dsn: str, db: str):
        super().__init__(daemon=True)
        self.dsn, self.db, self.stop, self.samples = dsn, db, threading.Event(), 0
        self.totals: dict[str, float] = {}

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.stop.wait(0.1):
                rows = conn.execute("SELECT state, wait_event_type, wait_event, query FROM pg_stat_activity "
                                    "WHERE datname = %s AND pid <> pg_backend_pid()", (self.db,)).fetchall()
                self.samples += 1
                for state, kind, event, query in rows:
                    if kind == "Lock":
                        # Name the table of the statement that waits: which lock every seal queues on.
                        table = re.search(r"(?:FROM|UPDATE|INTO)\s+(\w+)", query or "", re.I)
                        key = f"lock:{table.group(1) if table else event}"
                    elif event in ("WALSync", "WALWrite", "WALSyncMethodAssign") or kind == "IPC" and event == "SyncRep":
                        key = "wal"
                    elif state == "active":
                        key = "run"
                    elif state and state.startswith("idle in transaction"):
                        key = "app"
                    else:
                        continue  # idle pool connections
                    self.totals[key] = self.totals.get(key, 0) + 1

    def result(self) -> dict[str, float]:
        self.stop.set()
        self.join()
        return {k: round(v / max(1, self.samples), 2) for k, v in sorted(self.totals.items())}


def pg_info() -> dict:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        def show(name: str) -> str:
            return conn.execute(f"SHOW {name}").fetchone()[0]
        return {"postgres_version": show("server_version"), "fsync": show("fsync"),
                "synchronous_commit": show("synchronous_commit")}


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


# ---- one server -----------------------------------------------------------------------------------

class Server:
    """`stalela serve` on a fresh database; stopped and the database dropped on exit."""

    def __init__(self, workers: int, concurrency: int, env: dict[str, str | None] | None = None):
        """``env``: variables to set for the server on top of this process's (None: unset it)."""
        self.workers, self.concurrency, self.extra_env = workers, concurrency, env or {}
        self.db = f"stalela_bench_{secrets.token_hex(4)}"
        self.dsn = f"postgresql://postgres@127.0.0.1:5432/{self.db}"
        self.token = secrets.token_urlsafe(24)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.tmp = Path(tempfile.mkdtemp(prefix="stalela-bench-"))
        self.log_path = self.tmp / "server.log"
        self.proc: subprocess.Popen | None = None
        self.kept_log: Path | None = None

    def __enter__(self) -> "Server":
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.db}"')
        env = dict(os.environ, STALELA_DATABASE_URL=self.dsn,
                   STALELA_OPERATOR_TOKEN=self.token, STALELA_DATA_DIR=str(self.tmp), STALELA_DEMO="false",
                   STALELA_LOG_LEVEL="WARNING", STALELA_BENCH_ENDPOINTS="true",
                   # One API key drives the whole load: its rate limit must not be what is measured.
                   STALELA_RATE_LIMIT_PER_SECOND="1000000", STALELA_RATE_LIMIT_BURST="1000000")
        for name, value in self.extra_env.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        exe = Path(sys.executable).with_name("stalela")
        # cwd is the temp dir so a developer's ./.env cannot change what is measured; a new session
        # so the whole uvicorn tree can be signalled by its process-group id at the end.
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([str(exe), "serve", "--host", "127.0.0.1", "--port", str(self.port),
                                      "--workers", str(self.workers)], env=env, cwd=self.tmp,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_path.read_text()[-3000:]}")
            try:
                if api(self.base, "GET", "/readyz")[0] == 200:
                    return self
            except (OSError, ValueError):
                pass
            time.sleep(0.3)
        raise RuntimeError(f"server not ready after 90 s:\n{self.log_path.read_text()[-3000:]}")

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
        self.log_text = self.log_path.read_text()
        if self.log_problems():
            # Keep the evidence outside the repository: the temp dir goes away just below.
            self.kept_log = Path(tempfile.gettempdir()) / f"{self.db}-server.log"
            shutil.copyfile(self.log_path, self.kept_log)
        shutil.rmtree(self.tmp, ignore_errors=True)
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')

    def log_problems(self) -> list[str]:
        """Log lines at error level or tracebacks: 5xx on the server show up here, not only in the client."""
        marks = ('"level": "error"', '"level":"error"', '"level": "critical"', '"level":"critical"', "traceback")
        return [ln for ln in self.log_text.splitlines() if any(m in ln.lower() for m in marks)]


# ---- the bench ------------------------------------------------------------------------------------

def wait_quiet(srv: Server, timeout: float = 30) -> None:
    """Wait until the server's database sessions are all idle.

    wrk leaves up to one request per connection in flight at its deadline; the server still runs
    them, and they must not spill into the next scenario's measurement.
    """
    deadline = time.monotonic() + timeout
    with psycopg.connect(srv.dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            busy = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND "
                                "pid <> pg_backend_pid() AND state <> 'idle'", (srv.db,)).fetchone()[0]
            if busy == 0:
                return
            time.sleep(0.2)


def check_counters(srv: Server, key: str, outlets: list[str], created: dict[str, int]) -> dict:
    """Gap-free check of each outlet: its newest invoice's counter against the 201s the client saw.

    wrk stops at the deadline without waiting for the requests in flight (at most one per
    connection); the server still seals those, so the counter may exceed the 201s by up to the
    concurrency ("cut"). The asyncio client drains, so there cut is 0. Exactness is then checked in
    the database: as many stored invoices as the counter, all counters distinct (no gap, no duplicate).
    """
    if not outlets:
        return {}
    with psycopg.connect(srv.dsn, autocommit=True) as conn:
        def stored() -> dict:
            rows = conn.execute("SELECT outlet_id, count(*), count(DISTINCT counter) FROM invoices "
                                "WHERE outlet_id = ANY(%s) GROUP BY outlet_id", (outlets,)).fetchall()
            return {o: (n, d) for o, n, d in rows}
        previous, deadline = None, time.monotonic() + 30
        while (current := stored()) != previous and time.monotonic() < deadline:
            previous = current  # wait until the cut requests have committed
            time.sleep(0.5)
    checks = {}
    for outlet in outlets:
        status, page = api(srv.base, "GET", f"/v1/invoices?outlet_id={outlet}&limit=1", key)
        counter = page["data"][0]["counter"] if status == 200 and page.get("data") else 0
        count, distinct = current.get(outlet, (0, 0))
        answered = created.get(outlet, 0)
        checks[outlet] = {"counter": counter, "created": answered, "cut": counter - answered, "stored": count,
                          "ok": counter == count == distinct and 0 <= counter - answered <= srv.concurrency}
    return checks


def bench_workers(workers: int, args: argparse.Namespace, backend: str) -> dict:
    with Server(workers, args.concurrency) as srv:
        status, created = api(srv.base, "POST", "/v1/tenants", srv.token,
                              {"name": "Bench SARL", "tax_id": "B123", "jurisdiction": "CD"})
        assert status == 201, (status, created)
        key = created["api_key"]
        outlets = []
        for i in range(args.outlets + 2):  # one for warm-up, one for seal-1, the rest for seal-N
            status, outlet = api(srv.base, "POST", "/v1/outlets", key, {"code": f"B{i + 1}", "name": f"Bench {i + 1}"})
            assert status == 201, (status, outlet)
            outlets.append(outlet["id"])
        warm, single, many = outlets[0], outlets[1:2], outlets[2:]
        common = dict(host="127.0.0.1", port=srv.port, concurrency=args.concurrency)
        if args.warmup > 0:
            # First requests pay for imports, pool connections and prepared statements in every worker.
            run_load(backend, path="/_bench/noop", auth="", body=BASELINE, outlets=[], duration=args.warmup, **common)
            run_load(backend, path="/v1/invoices", auth=key, body=INVOICE, outlets=[warm], duration=args.warmup,
                     **common)
            wait_quiet(srv)
        scenarios = [("baseline", "/_bench/noop", "", BASELINE, []),
                     ("seal-1", "/v1/invoices", key, INVOICE, single),
                     (f"seal-{len(many)}", "/v1/invoices", key, INVOICE, many)]
        results = []
        for name, path, auth, body, targets in scenarios:
            ticks0, busy0 = cpu_ticks(srv.proc.pid, srv.db), machine_busy()
            sampler = WaitSampler(PG_ADMIN, srv.db)
            sampler.start()
            r = run_load(backend, path=path, auth=auth, body=body, outlets=targets, duration=args.duration, **common)
            ticks1, busy1 = cpu_ticks(srv.proc.pid, srv.db), machine_busy()
            r["pg_backends"] = sampler.result()
            wait_quiet(srv)
            r["server_cpu"] = cores(ticks0["server"], ticks1["server"], r["seconds"])
            r["postgres_cpu"] = cores(ticks0["postgres"], ticks1["postgres"], r["seconds"])
            r["machine_busy"] = (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1])
            r["errors"] = r["socket_errors"] + sum(n for code, n in r["statuses"].items() if not code.startswith("2"))
            r["counter_check"] = check_counters(srv, key, targets, r["created"])
            r["counter_ok"] = all(c["ok"] for c in r["counter_check"].values())
            if not r["counter_ok"]:
                r["errors"] += 1
            r.update(name=name, workers=workers)
            results.append(r)
    for r in results:
        r["ratio"] = r["rps"] / results[0]["rps"] if results[0]["rps"] else 0.0
    problems = srv.log_problems()
    return {"workers": workers, "scenarios": results, "server_log_problems": len(problems),
            "server_log_sample": problems[:5], "server_log": str(srv.kept_log) if srv.kept_log else None}


def print_table(info: dict, runs: list[dict]) -> None:
    print(f"\nseal bench  {info['cpu_count']} CPUs  python {info['python']}  postgres {info['postgres_version']}  "
          f"fsync={info['fsync']}  synchronous_commit={info['synchronous_commit']}  client={info['client']}  "
          f"concurrency={info['concurrency']}  duration={info['duration']}s  commit={(info['git_commit'] or '?')[:10]}")
    header = f"{'workers':>7} {'scenario':<10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>6} " \
             f"{'errors':>6} {'gap-free':>8} {'srv cpu':>7} {'pg cpu':>6} {'cli cpu':>7} {'box':>5}"
    print(header)
    print("-" * len(header))
    for run in runs:
        for r in run["scenarios"]:
            counters = ",".join(str(c["counter"]) for c in r["counter_check"].values())
            check = "-" if not r["counter_check"] else ("ok" if r["counter_ok"] else "FAIL")
            print(f"{r['workers']:>7} {r['name']:<10} {r['rps']:>9.1f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} "
                  f"{r['ratio']:>6.3f} {r['errors']:>6} {check:>8} {r['server_cpu']:>7.2f} {r['postgres_cpu']:>6.2f} {r['client_cpu']:>7.2f} "
                  f"{r['machine_busy']:>5.0%}")
            if r["counter_check"]:
                c = {k: sum(v[k] for v in r["counter_check"].values()) for k in ("counter", "created", "cut")}
                print(f"{'':>18} counters {c['counter']} = {c['created']} answered 201 + {c['cut']} cut at the deadline")
            if r["pg_backends"]:
                waits = "  ".join(f"{k} {v:.1f}" for k, v in r["pg_backends"].items())
                print(f"{'':>18} backends on average: {waits}")
            if r["client_cpu"] > 0.8:
                # One core of load generator means it, not the server, may have set the rate.
                print(f"{'':>18} warning: the load generator used {r['client_cpu']:.2f} cores: likely client-bound")
            if r["errors"]:
                print(f"{'':>18} statuses {r['statuses']}, socket errors {r['socket_errors']}; sample: {r['sample'][:300]}")
        if run["server_log_problems"]:
            print(f"  server log (workers={run['workers']}): {run['server_log_problems']} error lines, kept in "
                  f"{run['server_log']}; first:")
            for line in run["server_log_sample"][:3]:
                print(f"    {line[:300]}")
    print("ratio = req/s / baseline req/s in the same run; srv/cli cpu = cores used by the server tree / load "
          "generator; pg cpu = its database's backends; box = whole machine busy (other load included)")
    print("backends on average: PostgreSQL sessions of the server that were waiting on a row lock (lock), flushing a "
          "commit (wal), executing (run) or idle in a transaction waiting for the server (app)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per scenario (default 10)")
    parser.add_argument("--concurrency", type=int, default=32, help="open connections (default 32)")
    parser.add_argument("--workers", default="1,2", help="uvicorn worker counts to try, comma-separated")
    parser.add_argument("--outlets", type=int, default=16, help="outlets in the many-outlet scenario")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per kind of request")
    parser.add_argument("--client", choices=["auto", "wrk", "python"], default="auto",
                        help="load generator: wrk if on PATH (auto), else the asyncio client")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/<date>.json")
    args = parser.parse_args(argv)
    backend = available_backend(args.client)
    info = {"cpu_count": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            **pg_info(), "git_commit": git_commit(), "client": backend, "concurrency": args.concurrency,
            "duration": args.duration, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    print(f"fsync={info['fsync']} synchronous_commit={info['synchronous_commit']} client={backend}", flush=True)
    runs = []
    for workers in [int(w) for w in args.workers.split(",") if w.strip()]:
        print(f"workers={workers} ...", flush=True)
        runs.append(bench_workers(workers, args, backend))
    print_table(info, runs)
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"{dt.date.today().isoformat()}.json"
        # One file per day shared by every bench: keep the other benches' sections.
        data = json.loads(path.read_text()) if path.exists() else {}
        data.setdefault("benches", {})["seal"] = {"machine": info, "runs": runs}
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        tmp.replace(path)
        print(f"results written to {path.relative_to(ROOT)}")
    failed = [r["name"] for run in runs for r in run["scenarios"] if r["errors"]]
    if failed:
        print(f"scenarios with errors: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
