"""Offline sealing: invoices sealed per second by the SDK's offline sealer on one core (its durable
journal included), and merged per second by the cloud, next to batch sealing measured in the same run.

Usage: .venv/bin/python bench/offline.py [--invoices 10000] [--batch-size 1000] [--workers 1] [--no-save]

  journal     the floor the journal sets: empty durable SQLite transactions (WAL, synchronous=FULL) on
              the same disk, one per seal, as the sealer commits
  seal        OfflineSealer.seal() one invoice at a time, in this process (one core): rules and totals,
              numbering, chaining, ES256, the journal's durable commit
  batch       POST /v1/invoices/batch on the real server (PostgreSQL), --batch-size invoices each,
              one client, one batch after the other: invoices/s (the baseline)
  merge       OfflineSealer.upload(): POST /v1/offline/batches of --batch-size of the invoices sealed
              above, one client, in order: invoices/s merged; ratio merge / batch (the target is >= 1)
Exits 1 when an invoice is not merged.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "sdk" / "python" / "src"))
import seal as seal_bench  # noqa: E402  (Server, api, pg_info, git_commit, INVOICE, RESULTS)

from stalela_sdk.offline import FileKey, OfflineSealer, UploadFailed  # noqa: E402


def invoice(i: int) -> dict:
    return {"type": "FV", "lines": [
        {"description": "Sac de riz 25 kg", "item_type": "BIE", "tax_group": "B", "quantity": "2",
         "unit_price": f"{45000 + i % 97}.00"},
        {"description": "Livraison", "item_type": "SER", "tax_group": "A", "quantity": "1", "unit_price": "5000"}]}


def journal_floor(tmp: Path, n: int) -> float:
    db = sqlite3.connect(tmp / "floor.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (i INTEGER PRIMARY KEY, v TEXT)")
    started = time.perf_counter()
    for i in range(n):
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t (i, v) VALUES (?, ?)", (i, "x" * 1500))  # about a journalled invoice
        db.execute("COMMIT")
    elapsed = time.perf_counter() - started
    db.close()
    return n / elapsed


def batch_baseline(base: str, key: str, outlet: str, total: int, size: int) -> dict:
    body = json.loads(seal_bench.INVOICE.replace("OUTLET_ID", outlet))
    sealed, batches = 0, 0
    with httpx.Client(base_url=base, timeout=300, headers={"Authorization": f"Bearer {key}"}) as c:
        started = time.perf_counter()
        while sealed < total:
            n = min(size, total - sealed)
            r = c.post("/v1/invoices/batch", json={"items": [{"idempotency_key": str(uuid.uuid4()), "invoice": body}
                                                             for _ in range(n)]})
            assert r.status_code == 200, r.text[:500]
            sealed += n
            batches += 1
        elapsed = time.perf_counter() - started
    return {"invoices": sealed, "batches": batches, "seconds": round(elapsed, 2),
            "invoices_per_s": round(sealed / elapsed, 1)}


def run(args: argparse.Namespace) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="stalela-offline-bench-"))
    floor = journal_floor(tmp, min(args.invoices, 2000))
    print(f"journal floor: {floor:.0f} durable commits/s", flush=True)
    with seal_bench.Server(args.workers, 8) as srv:
        status, created = seal_bench.api(srv.base, "POST", "/v1/tenants", srv.token,
                                         {"name": "Offline bench", "tax_id": "OB1", "jurisdiction": "CD"})
        assert status == 201, created
        key, tenant_id = created["api_key"], created["tenant"]["id"]
        outlets = []
        for code in ("OFF", "BAT"):
            status, outlet = seal_bench.api(srv.base, "POST", "/v1/outlets", key, {"code": code, "name": code})
            assert status == 201, outlet
            outlets.append(outlet["id"])
        sealer = OfflineSealer(tmp / "journal.db", FileKey.create(tmp / "device.pem"), base_url=srv.base, api_key=key)
        sealer.register(outlets[0], "Bench till", tenant_id)
        sealer.fetch_credential(block_size=args.invoices)
        print(f"sealing {args.invoices} offline ...", flush=True)
        cpu, started = time.process_time(), time.perf_counter()
        for i in range(args.invoices):
            sealer.seal(invoice(i))
        seal_s, seal_cpu = time.perf_counter() - started, time.process_time() - cpu
        print(f"batch sealing {args.invoices} ...", flush=True)
        batch = batch_baseline(srv.base, key, outlets[1], args.invoices, args.batch_size)
        print(f"merging {args.invoices} ...", flush=True)
        started, error = time.perf_counter(), None
        try:
            outcomes = sealer.upload(batch_size=args.batch_size)
        except UploadFailed as exc:  # e.g. a server without the batch endpoint: still report the rest
            outcomes, error = {}, str(exc)
            print(f"merge failed: {exc}", file=sys.stderr)
        merge_s = time.perf_counter() - started
        sealer.close()
    problems = srv.log_problems()
    merged = outcomes.get("merged", 0)
    return {
        "invoices": args.invoices, "batch_size": args.batch_size, "workers": args.workers,
        "journal_floor_commits_per_s": round(floor, 1),
        "seal": {"seconds": round(seal_s, 2), "invoices_per_s": round(args.invoices / seal_s, 1),
                 "cpu_seconds": round(seal_cpu, 2), "cpu_ms_per_invoice": round(1000 * seal_cpu / args.invoices, 3)},
        "batch": batch,
        "merge": {"seconds": round(merge_s, 2), "invoices_per_s": round(merged / merge_s, 1) if merge_s else 0,
                  "outcomes": outcomes},
        "ratio_merge_to_batch": round((merged / merge_s) / batch["invoices_per_s"], 2) if merged else 0,
        "merge_error": error, "server_log_problems": problems[:5],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--invoices", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1, help="API processes of the server")
    parser.add_argument("--duration", type=float, default=None, help=argparse.SUPPRESS)  # bench/run.py passes it on
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/<date>.json")
    args = parser.parse_args(argv)
    if args.duration:
        args.invoices = min(args.invoices, int(1000 * args.duration))
    info = {"cpu_count": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            **seal_bench.pg_info(), "git_commit": seal_bench.git_commit(),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    print(f"fsync={info['fsync']} synchronous_commit={info['synchronous_commit']} invoices={args.invoices} "
          f"batch={args.batch_size}", flush=True)
    res = run(args)
    s, b, m = res["seal"], res["batch"], res["merge"]
    print(f"\n{'offline seal (1 core, journal)':<34} {s['invoices_per_s']:>9.0f} /s   "
          f"cpu {s['cpu_ms_per_invoice']:.2f} ms/invoice, journal floor {res['journal_floor_commits_per_s']:.0f} commits/s")
    print(f"{'batch sealing (baseline)':<34} {b['invoices_per_s']:>9.0f} /s   {b['batches']} batches of {res['batch_size']}")
    print(f"{'merge (POST /v1/offline/batches)':<34} {m['invoices_per_s']:>9.0f} /s   {m['outcomes']}")
    print(f"{'merge / batch':<34} {res['ratio_merge_to_batch']:>9.2f}     target >= 1: "
          f"{'met' if res['ratio_merge_to_batch'] >= 1 else 'NOT met'}")
    if not args.no_save:
        seal_bench.RESULTS.mkdir(exist_ok=True)
        path = seal_bench.RESULTS / f"{dt.date.today().isoformat()}.json"
        data = json.loads(path.read_text()) if path.exists() else {}
        data.setdefault("benches", {})["offline"] = {"machine": info, **res}
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        tmp.replace(path)
        print(f"results written to {path.relative_to(seal_bench.ROOT)}")
    return 0 if m["outcomes"] == {"merged": res["invoices"]} else 1


if __name__ == "__main__":
    sys.exit(main())
