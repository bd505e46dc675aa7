"""sync.py's drain part: how long a backlog takes to reach the DGI when the DGI misbehaves.

Per scenario, on a database and a simulator of its own: --drain-invoices invoices are sealed while no worker runs
(a backlog, as after an outage), then 2 `stalela worker` processes start; drain = spawn -> every invoice
acknowledged and every event done. The 0 % run is the baseline of
the same run; the 20 % run injects faults on every request (15 % before anything: 503 or a dropped connection)
and 5 % more on creates and confirms after they took effect (the answer is lost). Also reported: outbox attempts
per event (what the retry budget of 25 sees), handler runs per invoice (attempts plus "retry later"s), the
simulator's 429 TOO_MANY_PENDING and 503 counts, creates per invoice, and confirmations counted twice.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import time
import urllib.request
from pathlib import Path
from types import ModuleType

import seal as seal_bench

FAULTS = {
    "0%": {},
    "20%": {"error_rate": 0.1, "drop_rate": 0.05, "drop_after_create_rate": 0.05,
            "drop_after_confirm_rate": 0.05},
}
TENANTS, OUTLETS = 2, 2  # four devices

ATTEMPTS_SQL = """SELECT count(*), count(*) FILTER (WHERE status = 'done'), avg(attempts),
  percentile_cont(0.99) WITHIN GROUP (ORDER BY attempts), max(attempts) FROM outbox
  WHERE topic = 'invoice.sealed' AND created_at >= %(f)s"""
RUNS_SQL = """SELECT avg(attempts), max(attempts), count(*) FILTER (WHERE status = 'acknowledged'),
  count(*) FILTER (WHERE status = 'failed') FROM invoice_sync WHERE sealed_at >= %(f)s"""


def sim_call(url: str, method: str, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def tally(records: dict) -> dict:
    requests = sum(len(records[k]) for k in ("confirmed", "pending", "expired", "cancelled"))
    return {"requests": requests, "duplicates": len(records["duplicates"]), **records.get("errors", {})}


def bench_drain(args, tmp: Path, h: ModuleType) -> dict:
    """h: the sync.py module (its process and database helpers)."""
    os.environ["STALELA_INPROCESS_WORKERS"] = "false"  # seal.py's Server passes its environment on: no sync yet
    os.environ["STALELA_BACKGROUND_WORKERS"] = "0"  # nor a supervised background process (serve starts one by default)
    os.environ["STALELA_WEBHOOKS_ALLOW_PRIVATE"] = "true"  # the simulator listens on plain http on loopback
    out = {"invoices": args.drain_invoices, "devices": TENANTS * OUTLETS, "workers": 2,
           "backoff_cap_s": args.drain_backoff_cap, "runs": []}
    for label, faults in FAULTS.items():
        print(f"drain: {args.drain_invoices} invoices over {TENANTS * OUTLETS} devices, {label} faults ...", flush=True)
        run, problems = drain_run(args, tmp, h, label, faults)
        out["runs"].append(run)
        for key, lines in problems.items():
            out.setdefault(key, []).extend(lines)
    out["date"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    return out


def drain_run(args, tmp: Path, h: ModuleType, label: str, faults: dict) -> tuple[dict, dict]:
    """One scenario on a database and a simulator of its own: a run that reused the previous one's would count
    its invoices, acknowledgements and pending device slots as well."""
    n, tmp = args.drain_invoices, tmp / f"drain-{label.rstrip('%')}"  # its own logs: the simulator's names its URL
    tmp.mkdir()
    sim, sim_url = h.start_simulator(tmp, [f"{t}x{o}" for t in range(TENANTS) for o in range(OUTLETS)])
    workers: list = []
    try:
        with seal_bench.Server(1, 64) as srv:
            targets = h.make_targets(srv, sim_url, TENANTS, OUTLETS)
            env = h.worker_env(srv.dsn, srv.tmp, 100) | {
                "STALELA_OUTBOX_BACKOFF_CAP_SECONDS": str(args.drain_backoff_cap)}
            wlog = tmp / "workers.log"
            sim_call(sim_url, "PUT", "/_sim/faults", faults | {"seed": 24} if faults else {})
            t_from = h.query(srv.dsn, "SELECT now()")[0]
            client = h.run_client({"port": srv.port, "targets": targets, "connections": 16, "rate": 100,
                                   "duration": n / 100})
            before, t0 = tally(sim_call(sim_url, "GET", "/_sim/records")), time.monotonic()
            workers = [h.spawn([str(h.STALELA), "worker", "--concurrency", "8"], env, wlog) for _ in range(2)]
            try:
                left, by_status = h.wait_synced(srv.dsn, args.drain_timeout)
                # An acknowledged invoice's event is marked done a moment later: drained means both.
                events_left = wait_events_done(h, srv.dsn, t_from, t0 + args.drain_timeout)
                seconds = time.monotonic() - t0
            finally:
                h.stop(workers)  # before the Server drops their database
            after = tally(sim_call(sim_url, "GET", "/_sim/records"))
            events, done, mean, p99, mx = h.query(srv.dsn, ATTEMPTS_SQL, {"f": t_from})
            runs_mean, runs_max, acked, failed = h.query(srv.dsn, RUNS_SQL, {"f": t_from})
            delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
            run = {
                "faults": label, "spec": faults, "sealed": client["sealed"], "drain_s": round(seconds, 2),
                "drained": left == 0 and events_left == 0 and done == events, "unsynced": left,
                "acknowledged": acked, "failed": failed, "acked_per_s": round(acked / seconds, 1), "events": events,
                "events_done": done, "attempts_mean": round(float(mean or 0), 2), "attempts_p99": float(p99 or 0),
                "attempts_max": mx, "handler_runs_mean": round(float(runs_mean or 0), 2),
                "handler_runs_max": runs_max, "too_many_pending_429": delta.get("TOO_MANY_PENDING", 0),
                "unavailable_503": delta.get("UNAVAILABLE", 0),
                "creates_per_invoice": round(delta["requests"] / max(1, client["sealed"]), 2),
                "duplicates": delta["duplicates"], "sync_status": by_status}
            problems = {"worker_log_errors": h.log_errors(wlog)}
        problems["server_log_errors"] = srv.log_problems()[:5]
    finally:
        h.stop(workers + [sim])
    return run, problems


def wait_events_done(h: ModuleType, dsn: str, t_from, deadline: float) -> int:
    """Until every invoice.sealed event since t_from is done, or the deadline; how many are not."""
    while True:
        events, done = h.query(dsn, ATTEMPTS_SQL, {"f": t_from})[:2]
        if events == done or time.monotonic() > deadline:
            return events - done
        time.sleep(0.2)


def print_drain(drain: dict) -> None:
    if drain.get("error"):
        print(f"\ndrain under faults: ERROR {drain['error']}")
    if not drain.get("runs"):
        return
    print(f"\ndrain under faults: {drain['invoices']} invoices sealed first, then {drain['workers']} workers, "
          f"{drain['devices']} devices (backoff cap {drain['backoff_cap_s']} s)")
    head = f"{'faults':>6} {'drain s':>8} {'acked/s':>8} {'attempts mean/p99/max':>22} {'runs mean/max':>14} " \
           f"{'429s':>6} {'503s':>6} {'creates/inv':>11} {'dups':>4} {'left':>5}"
    print(head + "\n" + "-" * len(head))
    for r in drain["runs"]:
        print(f"{r['faults']:>6} {r['drain_s']:>8.1f} {r['acked_per_s']:>8.1f} "
              f"{r['attempts_mean']:>10.2f} / {r['attempts_p99']:>4.0f} / {r['attempts_max'] or 0:>3} "
              f"{r['handler_runs_mean']:>7.2f} / {r['handler_runs_max'] or 0:>4} {r['too_many_pending_429']:>6} "
              f"{r['unavailable_503']:>6} {r['creates_per_invoice']:>11.2f} {r['duplicates']:>4} {r['unsynced']:>5}")
    base = drain["runs"][0]["drain_s"]
    for r in drain["runs"][1:]:
        print(f"drain time with {r['faults']} faults: {r['drain_s'] / base:.1f}x the 0 % baseline"
              + ("" if r["drained"] else f" (NOT drained after the timeout: {r['unsynced']} unsynced, "
                 f"{r['events'] - r['events_done']} events not done)"))
    for line in drain.get("worker_log_errors", [])[:3] + drain.get("server_log_errors", [])[:3]:
        print(f"  log: {line[:300]}")
