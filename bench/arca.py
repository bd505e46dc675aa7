"""Argentina: AR receipts sealed and authorised (CAE) per second against the ARCA simulator, 0 and 200 ms.

Usage: .venv/bin/python bench/arca.py [--receipts 200] [--latencies 0,200] [--rate 10] [--duration 10]
                                      [--quick] [--no-save]

One `stalela serve` (seal.py's Server, API only) on PostgreSQL, `stalela simulate arca` in its own process,
2 `stalela worker` processes (sync.py's settings). Per added WSFE latency (simulator `latency_ms`):
  backlog 1x1   --receipts receipts on one point of sale, one type (one series), sealed while no worker runs,
                then drained: workers' spawn -> every receipt acknowledged
  backlog 4x2   the same over 4 points of sale x 2 types (B and A: 8 series)
  lag 4x2       workers running, receipts sealed open loop at --rate for --duration over the 8 series;
                seal -> acknowledged lag (authority_acks.created_at - invoices.issued_at) p50/p99/max
Baseline, in the same run: sync.py's DGI drain (bench/_sync_drain.py, 0 % faults, the same number of
invoices over 2 tenants x 2 devices, 2 workers). Every scenario is a tenant (CUIT, certificate) of its own;
WSAA must have issued exactly one ticket per tenant over the whole run (the ticket cached in the database is
shared by the workers and survives their restarts). See README.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).parent))
import seal as seal_bench  # noqa: E402
import sync as sync_bench  # noqa: E402  (spawn, stop, worker_env, query, log_errors, LAG_SQL, STALELA)
from _loadgen import _read_response  # noqa: E402
from _sync_drain import drain_run  # noqa: E402

UTC = dt.timezone.utc
LAYOUTS = {"1x1": (1, ("6",)), "4x2": (4, ("6", "1"))}  # points of sale, receipt types (B, A)
BUYER_RI = {"doc_type": "CUIT", "doc_number": "20267565393", "name": "Juan Pérez",
            "vat_condition": "responsable_inscripto"}

SYNC_SQL = """SELECT count(*) FILTER (WHERE s.status = 'acknowledged'), count(*) FILTER (WHERE s.status = 'rejected'),
  count(*) FILTER (WHERE s.status = 'pending'), (SELECT count(*) FROM invoices WHERE tenant_id = %(t)s)
  FROM invoice_sync s WHERE s.tenant_id = %(t)s"""
ACKS_SQL = """SELECT count(*), min(a.created_at), max(a.created_at),
  percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM a.created_at - i.issued_at)),
  percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM a.created_at - i.issued_at)),
  max(extract(epoch FROM a.created_at - i.issued_at))
  FROM authority_acks a JOIN invoices i ON i.tenant_id = a.tenant_id AND i.id = a.invoice_id
  WHERE a.tenant_id = %(t)s"""


# ---- the simulator, tenants, certificates -----------------------------------------------------------

def sim_call(url: str, method: str, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def start_simulator(tmp: Path):
    log = tmp / "arca-simulator.log"
    sim = sync_bench.spawn([str(sync_bench.STALELA), "simulate", "arca", "--port", "0"], None, log)
    deadline = time.monotonic() + 30
    while "listening http" not in log.read_text():
        if sim.poll() is not None or time.monotonic() > deadline:
            sync_bench.stop([sim])
            raise RuntimeError(f"ARCA simulator did not start: {log.read_text()[-1000:]}")
        time.sleep(0.1)
    return sim, log.read_text().split("listening ", 1)[1].split()[0]


def cuit(n: int) -> str:
    """A valid CUIT 30-7xxxxxxx-d (mod 11, weights 5432765432); n-th one whose check digit is not 10."""
    k = 0
    while True:
        base = f"307{(1234560 + n * 37 + k) % 10_000_000:07d}"
        r = 11 - sum(int(d) * w for d, w in zip(base, (5, 4, 3, 2, 7, 6, 5, 4, 3, 2))) % 11
        if r != 10:
            return base + str(0 if r == 11 else r)
        k += 1


def certificate(tax_id: str) -> tuple[str, str]:
    """A certificate as ARCA issues them (serialNumber=CUIT n), self-signed: the simulator runs without --ca."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Bench SRL"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "stalela-bench"),
                      x509.NameAttribute(NameOID.SERIAL_NUMBER, f"CUIT {tax_id}")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30)).sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                              serialization.NoEncryption()).decode())


def receipt(outlet: str, invoice_type: str) -> dict:
    body = {"outlet_id": outlet, "type": invoice_type,
            "lines": [{"description": "Yerba mate 1 kg", "quantity": "2", "unit_price": "3025.00", "vat_rate": "21"},
                      {"description": "Pan", "quantity": "1", "unit_price": "1000", "vat_rate": "10.5"}]}
    if invoice_type == "1":
        body["buyer"] = BUYER_RI
    return body


def make_tenant(srv, sim_url: str, n: int, layout: str) -> dict:
    """An AR tenant with its points of sale and credentials; (tenant id, CUIT, [(api key, receipt JSON)])."""
    def call(expect: int, method: str, path: str, token: str, body: dict) -> dict:
        status, answer = seal_bench.api(srv.base, method, path, token, body)
        assert status == expect, (method, path, status, answer)
        return answer

    tax_id = cuit(n)
    made = call(201, "POST", "/v1/tenants", srv.token, {"name": f"Bench AR {n}", "tax_id": tax_id,
                                                         "jurisdiction": "AR",
                                                         "ar": {"vat_condition": "responsable_inscripto"}})
    key, points, types = made["api_key"], *LAYOUTS[layout]
    outlets = [call(201, "POST", "/v1/outlets", key, {"code": f"PV{p}", "name": f"Caja {p}", "pos_number": p})["id"]
               for p in range(1, points + 1)]
    cert, private_key = certificate(tax_id)
    call(200, "PUT", "/v1/authority/arca/credentials", key, {
        "certificate": cert, "private_key": private_key, "environment": "custom",
        "wsaa_url": f"{sim_url}/ws/services/LoginCms", "wsfe_url": f"{sim_url}/wsfev1/service.asmx"})
    targets = [(key, json.dumps(receipt(o, t))) for o in outlets for t in types]
    return {"id": made["tenant"]["id"], "cuit": tax_id, "layout": layout, "series": len(targets), "targets": targets}


# ---- load, waiting, measuring ----------------------------------------------------------------------------

async def paced_client(cfg: dict) -> dict:
    """sync.py's open-loop client with the receipt bodies given: request k is due at start + k / rate."""
    payloads = [f"POST /v1/invoices HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Authorization: Bearer {key}\r\nContent-Length: {len(body.encode())}\r\n\r\n{body}".encode()
                for key, body in cfg["targets"]]
    rate, total = cfg["rate"], cfg["total"]
    slots, lat, st = iter(range(total)), [], {"statuses": {}, "late": 0, "errors": 0, "sample": ""}
    start = time.perf_counter() + 0.1

    async def connection() -> None:
        reader = writer = None
        for k in slots:
            delay = start + k / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.1:
                st["late"] += 1
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", cfg["port"])
                t0 = time.perf_counter()
                writer.write(payloads[k % len(payloads)])
                status, body, close = await _read_response(reader)
                lat.append(time.perf_counter() - t0)
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
        if writer is not None:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(cfg["connections"])))
    seconds, lat = time.perf_counter() - start, sorted(lat)
    pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else 0.0  # noqa: E731
    return {"sent": total, "seconds": seconds, "sealed": st["statuses"].get("201", 0), "p50_ms": pct(0.5),
            "p99_ms": pct(0.99), **st}


def run_client(cfg: dict) -> dict:
    return json.loads(subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--paced-client"], input=json.dumps(cfg),
        capture_output=True, text=True, check=True).stdout)


def wait_tenant(dsn: str, tenant: str, timeout: float) -> tuple[int, int, int, int]:
    """Until no receipt of the tenant is pending (or timeout): (acknowledged, rejected, pending, invoices)."""
    deadline = time.monotonic() + timeout
    while True:
        acked, rejected, pending, invoices = sync_bench.query(dsn, SYNC_SQL, {"t": tenant})
        if (acked + rejected == invoices and not pending) or time.monotonic() > deadline:
            return acked, rejected, pending, invoices
        time.sleep(0.1)


def sim_counts(sim_url: str) -> dict:
    return sim_call(sim_url, "GET", "/_sim/state")["counts"]


def delta(before: dict, after: dict) -> dict:
    return {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}


def cpu_sample(srv, sim, workers: list) -> dict:
    """CPU ticks of the workers, the simulator, the server's tree and its database's backends; the box's."""
    server = seal_bench.cpu_ticks(srv.proc.pid, srv.db)
    return {"workers": {p: t for w in workers for p, t in seal_bench.cpu_ticks(w.pid, srv.db)["server"].items()},
            "simulator": seal_bench.cpu_ticks(sim.pid, srv.db)["server"], "server": server["server"],
            "postgres": server["postgres"], "box": seal_bench.machine_busy()}


def cpu_used(a: dict, b: dict, seconds: float, receipts: int) -> dict:
    """Cores used by each part between two samples, and CPU ms per receipt acknowledged in between."""
    out = {k: round(seal_bench.cores(a[k], b[k], seconds), 2) for k in ("workers", "simulator", "server", "postgres")}
    out["box"] = round((b["box"][0] - a["box"][0]) / max(1, b["box"][1] - a["box"][1]), 2)
    out["ms_per_receipt"] = {k: round(out[k] * seconds / max(1, receipts) * 1000, 1)
                             for k in ("workers", "simulator", "server", "postgres")}
    return out


def start_workers(srv, n: int = 2) -> list:
    """sync.py's workers (batch 100, poll 0.05 s, concurrency 8); their log is the run's, kept after it."""
    env = sync_bench.worker_env(srv.dsn, srv.tmp, 100)
    return [sync_bench.spawn([str(sync_bench.STALELA), "worker", "--concurrency", "8"], env, srv.worker_log)
            for _ in range(n)]


def settle_setup(srv, tenant: dict, timeout: float = 120) -> None:
    """The tenant's setup events (credentials saved, points of sale created: series alignment, WSAA login) handled
    by workers at 0 ms, then the workers stopped: what is measured next is the receipts alone."""
    workers = start_workers(srv)
    try:
        deadline = time.monotonic() + timeout
        while sync_bench.query(srv.dsn, "SELECT count(*) FROM outbox WHERE tenant_id = %(t)s AND status = 'pending'",
                               {"t": tenant["id"]})[0]:
            if time.monotonic() > deadline:
                raise RuntimeError("the setup events of the tenant were not handled")
            time.sleep(0.1)
    finally:
        sync_bench.stop(workers)


# ---- the scenarios ------------------------------------------------------------------------------------------

def backlog(args, srv, sim, sim_url: str, tenant: dict, latency: float) -> dict:
    """Seal --receipts while no worker runs (closed loop, 16 connections), then 2 workers drain them."""
    settle_setup(srv, tenant)
    sim_call(sim_url, "PUT", "/_sim/faults", {"latency_ms": latency})
    n = args.receipts
    client = run_client({"port": srv.port, "targets": tenant["targets"], "connections": 16, "rate": 100_000,
                         "total": n})
    before, t0 = sim_counts(sim_url), time.monotonic()
    workers = start_workers(srv)
    try:
        # CPU is counted from the first CAE stored: the workers' start-up (imports, pools) is not per receipt.
        while not (n0 := sync_bench.query(srv.dsn, SYNC_SQL, {"t": tenant["id"]})[0]):
            if time.monotonic() - t0 > args.timeout or any(w.poll() is not None for w in workers):
                break
            time.sleep(0.05)
        cpu0, t1 = cpu_sample(srv, sim, workers), time.monotonic()
        acked, rejected, pending, invoices = wait_tenant(srv.dsn, tenant["id"], args.timeout)
        seconds = time.monotonic() - t0
        cpu = cpu_used(cpu0, cpu_sample(srv, sim, workers), time.monotonic() - t1, acked - n0)
    finally:
        sync_bench.stop(workers)
    count, first, last, _, _, _ = sync_bench.query(srv.dsn, ACKS_SQL, {"t": tenant["id"]})
    steady = (count - 1) / (last - first).total_seconds() if count > 1 and last > first else 0.0
    calls = delta(before, sim_counts(sim_url))
    return {"scenario": f"backlog {tenant['layout']}", "latency_ms": latency, "series": tenant["series"],
            "cuit": tenant["cuit"], "receipts": n, "sealed": client["sealed"],
            "sealed_per_s": client["sealed"] / client["seconds"], "seal_p50_ms": client["p50_ms"],
            "seal_p99_ms": client["p99_ms"], "drain_s": round(seconds, 2), "authorised_per_s": acked / seconds,
            "steady_per_s": steady, "per_series_per_s": steady / tenant["series"], "acknowledged": acked,
            "rejected": rejected, "unsynced": pending + invoices - acked - rejected, "sim_calls": calls,
            "cpu": cpu,
            "client_errors": client["errors"] + sum(v for k, v in client["statuses"].items() if k != "201"),
            "sample": client["sample"]}


def lag(args, srv, sim, sim_url: str, tenant: dict, latency: float) -> dict:
    """Workers running; receipts sealed open loop at --rate for --duration; seal -> acknowledged lag."""
    settle_setup(srv, tenant)
    sim_call(sim_url, "PUT", "/_sim/faults", {"latency_ms": latency})
    workers = start_workers(srv)
    try:
        time.sleep(2)  # the workers' start-up (imports, pools) is not lag
        before = sim_counts(sim_url)
        client = run_client({"port": srv.port, "targets": tenant["targets"], "connections": 16, "rate": args.rate,
                             "total": int(args.rate * args.duration)})
        end = time.monotonic()
        acked, rejected, pending, invoices = wait_tenant(srv.dsn, tenant["id"], args.timeout)
        drain = time.monotonic() - end
    finally:
        sync_bench.stop(workers)
    count, first, last, p50, p99, mx = sync_bench.query(srv.dsn, ACKS_SQL, {"t": tenant["id"]})
    return {"scenario": f"lag {tenant['layout']}", "latency_ms": latency, "series": tenant["series"],
            "cuit": tenant["cuit"], "rate": args.rate, "receipts": client["sent"], "sealed": client["sealed"],
            "sealed_per_s": client["sealed"] / client["seconds"], "late": client["late"],
            "seal_p50_ms": client["p50_ms"], "seal_p99_ms": client["p99_ms"], "lag_p50_ms": float(p50 or 0) * 1000,
            "lag_p99_ms": float(p99 or 0) * 1000, "lag_max_ms": float(mx or 0) * 1000, "drain_after_s": round(drain, 2),
            "acknowledged": acked, "rejected": rejected, "unsynced": pending + invoices - acked - rejected,
            "sim_calls": delta(before, sim_counts(sim_url)),
            "client_errors": client["errors"] + sum(v for k, v in client["statuses"].items() if k != "201"),
            "sample": client["sample"]}


def bench_arca(args, tmp: Path) -> dict:
    out: dict = {"receipts": args.receipts, "workers": 2, "runs": []}
    sim, sim_url = start_simulator(tmp)
    try:
        with seal_bench.Server(1, 64) as srv:
            srv.worker_log, tenants = tmp / "arca-workers.log", []
            try:
                for latency in args.latencies:
                    for kind, layout in (("backlog", "1x1"), ("backlog", "4x2"), ("lag", "4x2")):
                        print(f"arca: {kind} {layout} at {latency:.0f} ms ...", flush=True)
                        tenant = make_tenant(srv, sim_url, len(tenants), layout)
                        tenants.append(tenant)
                        run = (backlog if kind == "backlog" else lag)(args, srv, sim, sim_url, tenant, latency)
                        out["runs"].append(run)
            finally:
                out["worker_log_errors"] = sync_bench.log_errors(srv.worker_log)
                state = sim_call(sim_url, "GET", "/_sim/state")
            tickets = {t["cuit"]: 0 for t in tenants}
            for ticket in state["tickets"]:
                tickets[ticket["cuit"]] = tickets.get(ticket["cuit"], 0) + 1
            out["wsaa"] = {"tenants": len(tenants), "tickets_issued": state["counts"].get("wsaa.tickets_issued", 0),
                           "tickets_per_cuit": tickets,
                           "already_authenticated": state["counts"].get("wsaa.already_authenticated", 0)}
        out["server_log_errors"] = srv.log_problems()[:5]
    finally:
        sync_bench.stop([sim])
    return out


def bench_baseline(args, tmp: Path) -> dict:
    """sync.py's DGI drain with no fault: the same number of invoices, 2 workers, 4 devices."""
    drain_args = SimpleNamespace(drain_invoices=args.receipts, drain_timeout=args.timeout, drain_backoff_cap=60)
    print(f"baseline: DGI drain of {args.receipts} invoices (0 % faults) ...", flush=True)
    run, problems = drain_run(drain_args, tmp, sync_bench, "0%", {})
    return run | problems


# ---- report -------------------------------------------------------------------------------------------------

def print_report(info: dict, arca: dict, base: dict) -> list[str]:
    problems = []
    print(f"\narca bench  {info['cpu_count']} CPUs  python {info['python']}  postgres {info['postgres_version']}  "
          f"fsync={info['fsync']}  synchronous_commit={info['synchronous_commit']}  "
          f"commit={(info['git_commit'] or '?')[:10]}")
    if base.get("error"):
        print(f"baseline: ERROR {base['error']}")
        problems.append(f"baseline: {base['error']}")
    elif base:
        print(f"baseline (DGI drain, 0 % faults, {base['sealed']} invoices, 2 workers, 4 devices): "
              f"{base['drain_s']:.1f} s, {base['acked_per_s']:.1f} acknowledged/s")
        if not base["drained"]:
            problems.append("baseline did not drain")
    if arca.get("error"):
        print(f"arca: ERROR {arca['error']}")
        problems.append(f"arca: {arca['error']}")
    head = f"{'scenario':<12} {'ms':>4} {'series':>6} {'n':>5} {'sealed/s':>8} {'seal p99':>8} {'drain s':>7} " \
           f"{'auth/s':>7} {'steady/s':>8} {'/series':>7} {'ratio':>6} {'lag p50':>8} {'p99':>7} {'max':>7} " \
           f"{'SOLICIT':>7} {'CONSULT':>7} {'rej':>4}"
    print(head + "\n" + "-" * len(head))
    for r in arca.get("runs", []):
        calls = r["sim_calls"]
        ratio = r["authorised_per_s"] / base["acked_per_s"] if "authorised_per_s" in r and base.get("acked_per_s") \
            else None
        print(f"{r['scenario']:<12} {r['latency_ms']:>4.0f} {r['series']:>6} {r['receipts']:>5} "
              f"{r['sealed_per_s']:>8.1f} {r['seal_p99_ms']:>8.0f} "
              + (f"{r['drain_s']:>7.1f} {r['authorised_per_s']:>7.1f} {r['steady_per_s']:>8.1f} "
                 f"{r['per_series_per_s']:>7.2f} {ratio or 0:>6.2f} {'-':>8} {'-':>7} {'-':>7} " if "drain_s" in r else
                 f"{'-':>7} {'-':>7} {'-':>8} {'-':>7} {'-':>6} {r['lag_p50_ms']:>8.0f} {r['lag_p99_ms']:>7.0f} "
                 f"{r['lag_max_ms']:>7.0f} ")
              + f"{calls.get('wsfe.FECAESolicitar', 0):>7} {calls.get('wsfe.FECompConsultar', 0):>7} "
                f"{r['rejected']:>4}")
        if "cpu" in r:
            c = r["cpu"]
            print(f"{'':>13}cores: workers {c['workers']}  simulator {c['simulator']}  server {c['server']}  "
                  f"postgres {c['postgres']}  box {c['box']:.0%};  CPU ms per receipt: "
                  + "  ".join(f"{k} {v}" for k, v in c["ms_per_receipt"].items()))
        if r["client_errors"] or r["unsynced"] or r["rejected"] or r["sealed"] != r["receipts"]:
            problems.append(f"{r['scenario']} {r['latency_ms']:.0f} ms: {r['client_errors']} client errors, "
                            f"{r['unsynced']} unsynced, {r['rejected']} rejected, {r['sealed']} of {r['receipts']} "
                            f"sealed; {r['sample'][:200]}")
        # The agent sends a series' waiting receipts many per request: more requests than receipts, or a
        # refused request (a 10016: a number sent twice), is the problem, not fewer.
        if calls.get("wsfe.FECAESolicitar", 0) > r["acknowledged"] or calls.get("wsfe.rejected_request"):
            problems.append(f"{r['scenario']} {r['latency_ms']:.0f} ms: {calls.get('wsfe.FECAESolicitar', 0)} "
                            f"FECAESolicitar for {r['acknowledged']} receipts, "
                            f"{calls.get('wsfe.rejected_request', 0)} refused")
    if "wsaa" in arca:
        w = arca["wsaa"]
        once = all(v == 1 for v in w["tickets_per_cuit"].values()) and w["tickets_issued"] == w["tenants"]
        print(f"WSAA: {w['tickets_issued']} ticket(s) issued for {w['tenants']} tenants over the whole run "
              f"(per CUIT: {sorted(set(w['tickets_per_cuit'].values()))}), {w['already_authenticated']} refused as "
              f"already authenticated: {'once per tenant' if once else 'NOT once per tenant'}")
        if not once:
            problems.append("WSAA tickets not once per tenant")
    for line in arca.get("worker_log_errors", [])[:3] + arca.get("server_log_errors", [])[:3]:
        print(f"  log: {line[:300]}")
        problems.append("errors in the logs")
    print("sealed/s: API, 16 connections (backlog: closed loop, nothing syncing; lag: open loop at --rate); drain = "
          "workers' spawn -> all acknowledged; auth/s = n / drain; steady/s = from first to last CAE stored; "
          "/series = steady/s per series; ratio = auth/s / baseline acknowledged/s; lag = ack - issued_at; "
          "SOLICIT/CONSULT = FECAESolicitar/FECompConsultar calls the simulator answered")
    return problems


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--paced-client"]:
        print(json.dumps(asyncio.run(paced_client(json.load(sys.stdin)))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="60 receipts per backlog, 5 s of lag")
    parser.add_argument("--receipts", type=int, help="receipts per backlog and baseline invoices (default 200)")
    parser.add_argument("--latencies", default="0,200", help="simulator latency_ms values (default 0,200)")
    parser.add_argument("--rate", type=float, default=10, help="seals/s in the lag scenario (default 10)")
    parser.add_argument("--duration", type=float, help="seconds of sealing in the lag scenario (default 10)")
    parser.add_argument("--timeout", type=float, default=600, help="give up a drain after (default 600 s)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the DGI drain baseline")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/<date>.json")
    args, _ = parser.parse_known_args(argv)  # bench/run.py passes every bench the same arguments
    args.receipts = args.receipts or (60 if args.quick else 200)
    args.duration = args.duration or (5 if args.quick else 10)
    args.latencies = [float(x) for x in args.latencies.split(",")]
    info = {"cpu_count": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            **seal_bench.pg_info(), "git_commit": seal_bench.git_commit(),
            "date": dt.datetime.now(UTC).isoformat(timespec="seconds")}
    tmp = Path(tempfile.mkdtemp(prefix="stalela-bench-arca-"))
    os.environ["STALELA_INPROCESS_WORKERS"] = "false"  # seal.py's Server passes its environment on
    os.environ["STALELA_BACKGROUND_WORKERS"] = "0"  # nor a supervised background process (serve starts one by default)
    os.environ["STALELA_WEBHOOKS_ALLOW_PRIVATE"] = "true"  # both simulators listen on plain http on loopback
    try:
        base = {} if args.no_baseline else bench_baseline(args, tmp)
    except Exception as exc:
        base = {"error": f"{type(exc).__name__}: {exc}"}
    try:
        arca = bench_arca(args, tmp)
    except Exception as exc:
        arca = {"error": f"{type(exc).__name__}: {exc}"}
    problems = print_report(info, arca, base)
    print(f"logs in {tmp}")
    if not args.no_save:
        seal_bench.RESULTS.mkdir(exist_ok=True)
        path = seal_bench.RESULTS / f"{dt.date.today().isoformat()}.json"
        data = json.loads(path.read_text()) if path.exists() else {}  # shared by every bench: keep the others
        data.setdefault("benches", {})["arca"] = {"machine": info, "baseline_dgi_drain": base, **arca}
        path.with_suffix(".json.tmp").write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
        path.with_suffix(".json.tmp").replace(path)
        print(f"results written to {path.relative_to(seal_bench.ROOT)}")
    if problems:
        print("problems: " + "; ".join(problems), file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
