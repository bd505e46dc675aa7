"""Z and X reports on a huge business day, and what keeping the day's figures costs each seal.

Usage: .venv/bin/python bench/reports.py [--invoices 10000] [--per-txn 500] [--blocks 4] [--block-seals 200]
                                         [--sqlite] [--no-save]
  a) overhead  seals through the service layer (seal_invoice, no HTTP) with the day-figures update on and
               off (DayBook.add replaced by a no-op), interleaved in blocks on a second outlet: one seal
               per transaction (what the API does) and --per-txn seals per transaction (CPU only, no commit
               in the way). Ratio = seals/s off / seals/s on: 1.05 means the figures cost 5 % of a seal.
  b) the day   --invoices seals into ONE outlet and ONE business day (the outlet's timezone is chosen so
               that its local day has most of its hours ahead), --per-txn per transaction; after every
               tenth, an X report (median of 3) and a SUM scan of the day: X stays flat, the scan grows.
  c) reports   X report (median of 5), then the Z close (lock, checkpoint, sign, insert) and its
               idempotent repeat, each in its own transaction; next to them, the cheapest possible scan
               of the same day (SELECT SUM(total_cents) over its invoices), the work the figures avoid.
               The Z total must equal that sum: exit 1 if not.
PostgreSQL (a throwaway database on 127.0.0.1:5432, dropped at the end), or SQLite with --sqlite.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import secrets
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from sqlalchemy import func, select

from stalela.auth.principal import Principal
from stalela.config import Settings
from stalela.migrations import upgrade
from stalela.db.session import Database
from stalela.fiscal.invoices import service as invoice_service
from stalela.fiscal.invoices.sealing import SealRequest
from stalela.fiscal.invoices.figures import DayBook
from stalela.fiscal.invoices.models import Invoice
from stalela.fiscal.invoices.schemas import InvoiceCreate
from stalela.fiscal.reports import service as reports
from stalela.accounts import schemas as tenancy_schemas, service as tenancy
from stalela.tenancy.context import bind_platform, bind_tenant

sys.path.insert(0, str(Path(__file__).parent))
import seal as seal_bench  # noqa: E402  (PG_ADMIN, INVOICE, RESULTS, pg_info, git_commit)


def morning_zone() -> str:
    """A fixed-offset zone where it is about 05:00 now, so the bench's day does not end under it."""
    offset = (5 - dt.datetime.now(dt.timezone.utc).hour) % 24
    offset = offset - 24 if offset > 14 else offset
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


async def setup(db: Database, settings: Settings) -> tuple[Principal, str, str]:
    async with db.transaction() as session:
        await bind_platform(session)
        tenant, _ = await tenancy.create_tenant(session, settings, tenancy_schemas.TenantCreate(
            name="Reports bench", tax_id="R" + secrets.token_hex(4)))
        principal = Principal(kind="api_key", tenant_id=tenant.id)
        zone = morning_zone()
        day = (await tenancy.create_outlet(session, principal, tenancy_schemas.OutletCreate(
            code="DAY", name="One huge day", timezone=zone))).id
        side = (await tenancy.create_outlet(session, principal, tenancy_schemas.OutletCreate(
            code="SIDE", name="Overhead", timezone=zone))).id
    return principal, day, side


async def seal_many(db: Database, settings: Settings, principal: Principal, outlet: str, count: int,
                    per_txn: int) -> float:
    """Seal ``count`` invoices into ``outlet``, ``per_txn`` per transaction (one group each, as the
    group commit and the batch endpoint do); seconds taken."""
    body = InvoiceCreate.model_validate(json.loads(seal_bench.INVOICE.replace("OUTLET_ID", outlet)))
    t0, done = time.perf_counter(), 0
    while done < count:
        step = min(per_txn, count - done)
        async with db.transaction() as session:
            await bind_tenant(session, principal.tenant_id)
            outcomes = await invoice_service.seal_many(session, settings, principal.tenant_id,
                                                       [SealRequest(principal, body) for _ in range(step)])
            assert all(getattr(o, "status", None) == 201 for o in outcomes), outcomes[:1]
        done += step
    return time.perf_counter() - t0


async def overhead(db: Database, settings: Settings, principal: Principal, outlet: str, per_txn: int,
                   blocks: int, block_seals: int) -> dict:
    """Interleaved blocks, figures on and off; seals/s of each, and the ratio off/on."""
    real = DayBook.add

    async def nothing(*_args, **_kw):  # noqa: ANN202
        return None

    took = {"on": 0.0, "off": 0.0}
    sealed = {"on": 0, "off": 0}
    try:
        for block in range(blocks * 2):
            mode = ("on", "off")[block % 2] if (block // 2) % 2 == 0 else ("off", "on")[block % 2]
            DayBook.add = real if mode == "on" else nothing
            took[mode] += await seal_many(db, settings, principal, outlet, block_seals, per_txn)
            sealed[mode] += block_seals
    finally:
        DayBook.add = real
    rate = {m: sealed[m] / took[m] for m in took}
    return {"per_txn": per_txn, "seals_per_mode": sealed["on"], "seals_per_s_on": round(rate["on"], 1),
            "seals_per_s_off": round(rate["off"], 1), "ratio_off_on": round(rate["off"] / rate["on"], 3),
            "us_per_seal_added": round((1 / rate["on"] - 1 / rate["off"]) * 1e6, 1)}


async def timed(db: Database, tenant_id: str, fn, *, readonly: bool = False):  # noqa: ANN001, ANN202
    t0 = time.perf_counter()
    async with db.transaction(readonly=readonly) as session:
        await bind_tenant(session, tenant_id)
        result = await fn(session)
    return (time.perf_counter() - t0) * 1000, result


async def probe_day(db: Database, settings: Settings, principal: Principal, outlet: str) -> dict:
    """X (median of 3) and the cheapest scan of the same day, while the day grows."""
    xs = [(await timed(db, principal.tenant_id, lambda s: reports.x_report(s, settings, principal, outlet),
                       readonly=True))[0] for _ in range(3)]
    scan_ms, _ = await timed(db, principal.tenant_id, lambda s: _sum_day(s, outlet), readonly=True)
    return {"x_ms": round(statistics.median(xs), 2), "scan_ms": round(scan_ms, 2)}


async def _sum_day(session, outlet: str):  # noqa: ANN001, ANN202
    stmt = select(func.count(), func.sum(Invoice.total_cents)).where(Invoice.outlet_id == outlet)
    return (await session.execute(stmt)).one()


async def reports_on_the_day(db: Database, settings: Settings, principal: Principal, outlet: str) -> dict:
    tid = principal.tenant_id
    x_ms = []
    for _ in range(5):
        ms, x = await timed(db, tid, lambda s: reports.x_report(s, settings, principal, outlet), readonly=True)
        x_ms.append(ms)

    scan_ms, (count, cents) = await timed(db, tid, lambda s: _sum_day(s, outlet), readonly=True)
    z_ms, closed = await timed(db, tid, lambda s: reports.close_day(s, settings, principal, outlet, None))
    again_ms, again = await timed(db, tid, lambda s: reports.close_day(s, settings, principal, outlet, None))
    z = reports.render_z(settings, closed.z)
    ok = (closed.created and not again.created and z["counts"]["invoices"] == count
          and z["totals"]["total"] == f"{cents / 100:.2f}" and x["totals"] == z["totals"])
    return {"day_invoices": count, "z_total": z["totals"]["total"], "x_ms_median": round(statistics.median(x_ms), 2),
            "x_ms_all": [round(v, 2) for v in x_ms], "z_close_ms": round(z_ms, 2), "z_again_ms": round(again_ms, 2),
            "sum_scan_ms": round(scan_ms, 2), "consistent": ok}


async def bench(url: str, args: argparse.Namespace, data_dir: str) -> dict:
    await upgrade(url)
    settings = Settings(database_url=url, data_dir=Path(data_dir), demo=False, log_level="WARNING",
                        inprocess_workers=False)
    db = Database.from_settings(settings)
    try:
        principal, day, side = await setup(db, settings)
        print("a) overhead of the day figures (interleaved blocks, figures on/off)", flush=True)
        over = [await overhead(db, settings, principal, side, 1, args.blocks, args.block_seals),
                await overhead(db, settings, principal, side, args.per_txn, args.blocks, args.per_txn)]
        for o in over:
            print(f"   {o['per_txn']:>4}/txn: on {o['seals_per_s_on']:>8,.0f}/s  off {o['seals_per_s_off']:>8,.0f}/s"
                  f"  ratio off/on {o['ratio_off_on']:.3f}  (+{o['us_per_seal_added']} us per seal)", flush=True)
        print(f"b) sealing {args.invoices:,} invoices into one outlet-day, {args.per_txn} per transaction; "
              "X and a SUM scan of the day as it grows", flush=True)
        seconds, growth, done = 0.0, [], 0
        step = max(args.invoices // 10, 1)
        while done < args.invoices:
            n = min(step, args.invoices - done)
            seconds += await seal_many(db, settings, principal, day, n, args.per_txn)
            done += n
            probe = await probe_day(db, settings, principal, day)
            growth.append({"invoices": done, **probe})
            print(f"   {done:>9,} sealed in {seconds:6.0f} s ({done / seconds:,.0f}/s)   X {probe['x_ms']:7.2f} ms   "
                  f"SUM scan {probe['scan_ms']:8.2f} ms", flush=True)
        print("c) reports on that day", flush=True)
        rep = await reports_on_the_day(db, settings, principal, day)
        print(f"   X {rep['x_ms_median']} ms (median of 5)   Z close {rep['z_close_ms']} ms   Z again "
              f"{rep['z_again_ms']} ms   vs SUM over the day's invoices {rep['sum_scan_ms']} ms   "
              f"consistent={rep['consistent']}", flush=True)
        return {"overhead": over, "growth": growth, "seal_seconds": round(seconds, 1),
                "seals_per_s": round(args.invoices / seconds, 1), "reports": rep}
    finally:
        await db.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--invoices", type=int, default=10_000,
                        help="invoices in the one big day (the issue asks for 1,000,000)")
    parser.add_argument("--per-txn", type=int, default=500, help="seals per transaction for the big day")
    parser.add_argument("--blocks", type=int, default=4, help="blocks per mode in the overhead comparison")
    parser.add_argument("--block-seals", type=int, default=200,
                        help="seals per block at one per transaction (batched blocks are --per-txn seals)")
    parser.add_argument("--sqlite", action="store_true", help="SQLite file instead of PostgreSQL")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/<date>.json")
    args, _ = parser.parse_known_args(argv)  # bench/run.py passes every bench the same arguments
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still drop the throwaway database
    with tempfile.TemporaryDirectory(prefix="stalela-bench-reports-") as tmp:
        if args.sqlite:
            url, drop = f"sqlite:///{tmp}/bench.db", None
            info = {"database": "sqlite"}
        else:
            name = f"stalela_bench_{secrets.token_hex(4)}"
            with psycopg.connect(seal_bench.PG_ADMIN, autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {name}")
            url = seal_bench.PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
            info = {"database": "postgresql", **seal_bench.pg_info()}

            def drop() -> None:
                with psycopg.connect(seal_bench.PG_ADMIN, autocommit=True) as conn:
                    conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        info.update({"cpu_count": os.cpu_count(), "python": platform.python_version(),
                     "git_commit": seal_bench.git_commit(), "invoices": args.invoices, "per_txn": args.per_txn,
                     "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
        print(f"{info['database']} {info.get('postgres_version', '')} fsync={info.get('fsync', '-')} "
              f"synchronous_commit={info.get('synchronous_commit', '-')}", flush=True)
        try:
            result = asyncio.run(bench(url, args, tmp))
        finally:
            if drop:
                drop()
    if not args.no_save:
        seal_bench.RESULTS.mkdir(exist_ok=True)
        path = seal_bench.RESULTS / f"{dt.date.today().isoformat()}.json"
        data = json.loads(path.read_text()) if path.exists() else {}
        data.setdefault("benches", {})["reports"] = {"machine": info, **result}
        tmp_path = path.with_suffix(".json.tmp")
        tmp_path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        tmp_path.replace(path)
        print(f"results written to {path.relative_to(seal_bench.ROOT)}")
    return 0 if result["reports"]["consistent"] else 1


if __name__ == "__main__":
    sys.exit(main())
