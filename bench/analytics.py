"""Analytics over a million invoices: P50/P95 of each /v1/analytics query over HTTP, and what the sums cost a seal.

Usage: .venv/bin/python bench/analytics.py [--invoices 1000000] [--sealed 5000] [--days 730] [--outlets 20]
                                           [--buyers 5000] [--requests 200] [--blocks 4] [--block-seals 200]
                                           [--only data,overhead] [--no-save]
  data      the real `stalela serve` (1 API worker) on a throwaway PostgreSQL database; a DRC tenant with
            --outlets outlets; --sealed invoices sealed through POST /v1/invoices/batch (a third with a buyer),
            then the sums of --invoices minus --sealed synthetic invoices over the last --days business days
            written straight into analytics_sales and analytics_authority with COPY, as sealing and the sync
            agent would have written them (one row per day, outlet, currency and type or tax group; per month
            and buyer; per day, outlet and outcome). Sealing a million through the API takes 11-12 minutes
            on this machine (bench/tiers.py): the queries read the same rows either way.
  queries   each route --requests times, interleaved with GET /v1/outlets (the baseline: a trivial
            authenticated GET on the same server and connection, in the same run). "cold": every request asks
            another window (the answer cache never hits: a first visit); "warm": one window again and again
            (the cache answers). P50, P95, and P95 / baseline P50.
  overhead  seals through the service layer (no HTTP, PostgreSQL) with the analytics sums on and off
            (Tallies.add and Tallies.write replaced by no-ops), interleaved blocks: one seal per transaction,
            and 100 per transaction. Ratio = seals/s off / on; us per seal added.
Target (issue 20): P95 < 100 ms per query over 1 M invoices.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import os
import platform
import random
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from stalela.fiscal.invoices.tallies import buyer_periods  # noqa: E402

import reports as reports_bench  # noqa: E402  (setup, seal_many: the service-layer sealing of bench/reports.py)
import seal as seal_bench  # noqa: E402  (Server, api, PG_ADMIN, pg_info, git_commit, RESULTS)

ZONE = dt.timezone(dt.timedelta(hours=1))  # Africa/Kinshasa, the DRC's default: no DST
TYPES = (("FV", 0.85, False), ("FT", 0.06, False), ("EV", 0.03, False), ("ET", 0.03, False), ("FA", 0.03, True))
GROUPS = (("A", "0", 0), ("B", "0.16", 16), ("C", "0.08", 8))
BUCKETS = ("le_1s", "le_5s", "le_15s", "le_1m", "le_5m", "le_15m", "le_1h", "le_6h", "le_1d", "over_1d")
BOUNDS = (1, 5, 15, 60, 300, 900, 3600, 21_600, 86_400, math.inf)


def _percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered) * 1000, ordered[math.ceil(len(ordered) * 0.95) - 1] * 1000


# --- data ------------------------------------------------------------------------------------------------


def _tenant(srv: seal_bench.Server, outlets: int) -> dict:
    status, created = seal_bench.api(srv.base, "POST", "/v1/tenants", srv.token,
                                     {"name": "Analytics bench SARL", "tax_id": "AB" + secrets.token_hex(3),
                                      "jurisdiction": "CD"})
    assert status == 201, created
    key = created["api_key"]
    ids = []
    for i in range(outlets):
        status, outlet = seal_bench.api(srv.base, "POST", "/v1/outlets", key, {"code": f"O{i:02d}", "name": f"Shop {i}"})
        assert status == 201, outlet
        ids.append(outlet["id"])
    return {"id": created["tenant"]["id"], "key": key, "outlets": ids}


def _seal(srv: seal_bench.Server, tenant: dict, count: int) -> tuple[float, list[str]]:
    """``count`` invoices through POST /v1/invoices/batch, a third with one of 50 buyers; the ids of those."""
    base = json.loads(seal_bench.INVOICE)
    with_buyers: list[str] = []
    started = time.monotonic()
    with httpx.Client(base_url=srv.base, timeout=120, headers={"Authorization": f"Bearer {tenant['key']}"}) as c:
        done = 0
        while done < count:
            n = min(1000, count - done)
            items = []
            for i in range(n):
                body = {**base, "outlet_id": tenant["outlets"][(done + i) % len(tenant["outlets"])]}
                if (done + i) % 3 == 0:
                    b = (done + i) % 50
                    body["buyer"] = {"type": "PM", "name": f"Client {b} SARL", "tax_id": f"A{b:07d}B"}
                items.append({"invoice": body})
            r = c.post("/v1/invoices/batch", json={"items": items})
            assert r.status_code in (200, 201, 207), r.text[:300]
            for i, item in enumerate(r.json()["data"]):
                if (done + i) % 3 == 0 and item.get("invoice"):
                    with_buyers.append(item["invoice"]["id"])
            done += n
    return time.monotonic() - started, with_buyers


def _synthetic(tenant: dict, invoices: int, days: int, buyers: int, refs: list[str], seed: int = 20) -> dict:
    """The sums ``invoices`` invoices would leave: rising ~2 % a month, busier on Saturdays; 40 % with a buyer
    (a few buyers buy most: Zipf-like); 97 % acknowledged, 2 % failed, 1 % rejected."""
    rng = random.Random(seed)
    today = dt.datetime.now(ZONE).date()
    first = today - dt.timedelta(days=days - 1)
    day_weights = [(1 + 0.02 * i / 30) * (1.4 if (first + dt.timedelta(days=i)).weekday() == 5 else 1.0)
                   for i in range(days)]
    outlets = tenant["outlets"]
    type_names, type_weights = [t[0] for t in TYPES], [t[1] for t in TYPES]
    credit = {t[0]: t[2] for t in TYPES}
    buyer_weights = [1 / (k + 1) for k in range(buyers)]
    sales: dict[tuple, list] = {}
    authority: dict[tuple, list] = {}
    day_idx = rng.choices(range(days), weights=day_weights, k=invoices)
    outlet_idx = rng.choices(range(len(outlets)), k=invoices)
    type_idx = rng.choices(type_names, weights=type_weights, k=invoices)
    buyer_idx = rng.choices(range(buyers), weights=buyer_weights, k=invoices)

    def add(key: tuple, sign: int, amount: int, base: int, vat: int, ref: str | None = None) -> None:
        """What Tallies._add does (fiscal/invoices/tallies.py), on integers."""
        acc = sales.get(key)
        if acc is None:
            acc = sales[key] = [0, 0, 0, 0, 0, 0, None]
        acc[0] += 1
        acc[2] += sign * amount
        if sign < 0:
            acc[1] += 1
            acc[3] += amount
        acc[4] += sign * base
        acc[5] += sign * vat
        if ref is not None:
            acc[6] = ref

    for n in range(invoices):
        day = first + dt.timedelta(days=day_idx[n])
        month = day.replace(day=1)
        outlet, kind = outlets[outlet_idx[n]], type_idx[n]
        sign = -1 if credit[kind] else 1
        base_total = vat_total = 0
        for group, rate, pct in GROUPS:
            if group != "B" and rng.random() < 0.6:
                continue
            base = rng.randrange(1_000, 500_000) * 100
            vat = base * pct // 100
            add(("tax", day, outlet, "CDF", f"{group}|{rate}"), sign, base + vat, base, vat)
            add(("tax_m", month, outlet, "CDF", f"{group}|{rate}"), sign, base + vat, base, vat)
            base_total += base
            vat_total += vat
        total = base_total + vat_total
        for row_kind, period, key in (("day", day, ""), ("month", month, ""), ("type", day, kind),
                                      ("type_m", month, kind)):
            add((row_kind, period, outlet, "CDF", key), sign, total, base_total, vat_total)
        if rng.random() < 0.4:
            ref = rng.choice(refs) if refs else None
            for grain, period in buyer_periods(day):
                add(("buyer", grain, period, "CDF", f"sub_bench{buyer_idx[n]:06d}"), sign, total, base_total,
                    vat_total, ref)
        if day >= today - dt.timedelta(days=1):
            continue  # sealed lately: still waiting for the DGI
        roll = rng.random()
        outcome = "acknowledged" if roll < 0.97 else "failed" if roll < 0.99 else "rejected"
        seconds = rng.lognormvariate(1.0, 1.2)
        acc = authority.setdefault((day, outlet, outcome), [0, 0] + [0] * len(BUCKETS))
        acc[0] += 1
        acc[1] += round(seconds * 1000)
        acc[2 + next(i for i, b in enumerate(BOUNDS) if seconds <= b)] += 1
    return {"sales": sales, "authority": authority, "first": first, "today": today}


def _copy(dsn: str, tenant_id: str, data: dict) -> dict:
    """COPY the synthetic sums in (the bench's own superuser connection, as a restore would), adding to the
    rows the sealed invoices left where keys meet."""
    now = dt.datetime.now(dt.timezone.utc).isoformat()
    with psycopg.connect(dsn, autocommit=False) as conn:
        conn.execute("CREATE TEMP TABLE s (LIKE analytics_sales) ON COMMIT DROP")
        with conn.cursor().copy("COPY s (tenant_id, kind, period, outlet_id, currency, key, count, credit_count, "
                                "amount, credited, base, vat, updated_at) FROM STDIN") as copy:
            for key, (n, cn, a, cr, b, v, _) in data["sales"].items():
                if key[0] != "buyer":
                    copy.write_row((tenant_id, *key, n, cn, a, cr, b, v, now))
        conn.execute("""INSERT INTO analytics_sales SELECT * FROM s ON CONFLICT (tenant_id, kind, period, outlet_id,
                        currency, key) DO UPDATE SET count = analytics_sales.count + excluded.count,
                        credit_count = analytics_sales.credit_count + excluded.credit_count,
                        amount = analytics_sales.amount + excluded.amount,
                        credited = analytics_sales.credited + excluded.credited, base = analytics_sales.base + excluded.base,
                        vat = analytics_sales.vat + excluded.vat""")
        conn.execute("CREATE TEMP TABLE bt (LIKE analytics_buyers) ON COMMIT DROP")
        with conn.cursor().copy("COPY bt (tenant_id, currency, grain, period, subject_id, count, credit_count, "
                                "amount, credited, ref, updated_at) FROM STDIN") as copy:
            for key, (n, cn, a, cr, _, _, ref) in data["sales"].items():
                if key[0] == "buyer":
                    _, grain, period, currency, subject = key
                    copy.write_row((tenant_id, currency, grain, period, subject, n, cn, a, cr, ref, now))
        conn.execute("""INSERT INTO analytics_buyers SELECT * FROM bt ON CONFLICT (tenant_id, currency, grain, period,
                        subject_id) DO UPDATE SET count = analytics_buyers.count + excluded.count,
                        credit_count = analytics_buyers.credit_count + excluded.credit_count,
                        amount = analytics_buyers.amount + excluded.amount,
                        credited = analytics_buyers.credited + excluded.credited""")
        buckets = ", ".join(BUCKETS)
        with conn.cursor().copy(f"COPY analytics_authority (tenant_id, day, outlet_id, outcome, count, ms_sum, "
                                f"{buckets}, updated_at) FROM STDIN") as copy:
            for (day, outlet, outcome), values in data["authority"].items():
                copy.write_row((tenant_id, day, outlet, outcome, *values, now))
        conn.commit()
    sizes = {}
    with psycopg.connect(dsn, autocommit=True) as conn:  # what autovacuum does to a table after a bulk load
        for table in ("analytics_sales", "analytics_buyers", "analytics_authority"):
            conn.execute(f"VACUUM ANALYZE {table}")
            rows, size = conn.execute(f"SELECT count(*), pg_total_relation_size('{table}') FROM {table}").fetchone()
            sizes[f"{table}_rows"], sizes[f"{table}_mb"] = rows, round(size / 2**20, 1)
    return sizes


# --- queries ---------------------------------------------------------------------------------------------


def _routes(today: dt.date, outlets: list[str]) -> list[tuple[str, str, object, dict]]:
    """(name, path, cold params for request i, warm params)."""
    def window(days: int, **more):  # noqa: ANN202
        def params(i: int) -> dict:
            end = today - dt.timedelta(days=i)
            return {"from": (end - dt.timedelta(days=days - 1)).isoformat(), "to": end.isoformat(), **more}
        return params
    choices = [None, *outlets]
    return [
        ("summary, 30 days by day", "summary", window(30), {}),
        ("summary, a year by week", "summary", window(365, interval="week"), window(365, interval="week")(0)),
        ("summary, 2 years by month", "summary", window(700, interval="month"),
         window(700, interval="month")(0)),
        ("taxes, a year", "taxes", window(365), window(365)(0)),
        ("types, a year", "types", window(365), window(365)(0)),
        ("outlets, a year", "outlets", window(365), window(365)(0)),
        ("buyers/top, a year, 10", "buyers/top", window(365, limit=10), window(365, limit=10)(0)),
        ("authority, a year", "authority", window(365), window(365)(0)),
        ("forecast, trend", "forecast",
         lambda i: {"months": 2 + i % 23, "method": ("trend", "seasonal")[i // 23 % 2],
                    **({"outlet_id": choices[i // 46 % len(choices)]} if choices[i // 46 % len(choices)] else {})},
         {"months": 6}),
    ]


def _measure(srv: seal_bench.Server, key: str, today: dt.date, outlets: list[str], requests: int) -> dict:
    routes = _routes(today, outlets)
    timings: dict[str, list[float]] = {"baseline": []}
    with httpx.Client(base_url=srv.base, timeout=60, headers={"Authorization": f"Bearer {key}"}) as c:
        def timed(name: str, path: str, params: dict) -> None:
            t0 = time.perf_counter()
            r = c.get(path, params=params)
            timings.setdefault(name, []).append(time.perf_counter() - t0)
            assert r.status_code == 200, (path, params, r.text[:300])

        for _ in range(5):  # warm-up: connections, caches of the server's own
            timed("warmup", "/v1/outlets", {})
        for i in range(requests):  # interleaved, so every series sees the same machine
            timed("baseline", "/v1/outlets", {})
            for name, path, cold, warm in routes:
                timed(f"{name}|cold", f"/v1/analytics/{path}", cold(i))
                timed(f"{name}|warm", f"/v1/analytics/{path}", warm)
    b50, b95 = _percentiles(timings["baseline"])
    out = {"baseline": {"p50_ms": round(b50, 2), "p95_ms": round(b95, 2)}, "routes": []}
    for name, *_ in routes:
        c50, c95 = _percentiles(timings[f"{name}|cold"])
        w50, w95 = _percentiles(timings[f"{name}|warm"])
        out["routes"].append({"route": name, "cold_p50_ms": round(c50, 2), "cold_p95_ms": round(c95, 2),
                              "warm_p50_ms": round(w50, 2), "warm_p95_ms": round(w95, 2),
                              "cold_p95_over_baseline_p50": round(c95 / b50, 1), "met": c95 < 100})
    return out


def data_and_queries(args: argparse.Namespace) -> dict:
    with seal_bench.Server(1, 8) as srv:
        tenant = _tenant(srv, args.outlets)
        seal_s, refs = _seal(srv, tenant, args.sealed)
        print(f"sealed {args.sealed:,} invoices through POST /v1/invoices/batch in {seal_s:.1f} s", flush=True)
        t0 = time.monotonic()
        synthetic = _synthetic(tenant, max(args.invoices - args.sealed, 0), args.days, args.buyers, refs)
        gen_s = time.monotonic() - t0
        t0 = time.monotonic()
        sizes = _copy(srv.dsn, tenant["id"], synthetic)
        print(f"sums of {args.invoices - args.sealed:,} more invoices over {args.days} days: generated in {gen_s:.1f} s, "
              f"copied in {time.monotonic() - t0:.1f} s; {sizes}", flush=True)
        result = _measure(srv, tenant["key"], synthetic["today"], tenant["outlets"], args.requests)
    problems = srv.log_problems()  # read once the server stopped
    b = result["baseline"]
    print(f"\nGET /v1/outlets (baseline, same run): P50 {b['p50_ms']:.1f} ms, P95 {b['p95_ms']:.1f} ms")
    print(f"{'route':32} {'cold P50':>9} {'cold P95':>9} {'warm P50':>9} {'warm P95':>9} {'P95/base':>9}  P95<100ms")
    for r in result["routes"]:
        print(f"{r['route']:32} {r['cold_p50_ms']:9.1f} {r['cold_p95_ms']:9.1f} {r['warm_p50_ms']:9.1f} "
              f"{r['warm_p95_ms']:9.1f} {r['cold_p95_over_baseline_p50']:9.1f}  {'met' if r['met'] else 'MISSED'}")
    return {"sealed": args.sealed, "seal_seconds": round(seal_s, 1), "synthetic_invoices": args.invoices - args.sealed,
            "days": args.days, "outlets": args.outlets, "buyers": args.buyers, "requests": args.requests, **sizes,
            **result, "server_log_problems": len(problems)}


# --- overhead --------------------------------------------------------------------------------------------


async def _overhead(url: str, data_dir: str, args: argparse.Namespace) -> list[dict]:
    from stalela.config import Settings
    from stalela.db.session import Database
    from stalela.fiscal.invoices.tallies import Tallies
    from stalela.migrations import upgrade

    await upgrade(url)
    settings = Settings(database_url=url, data_dir=Path(data_dir), demo=False, log_level="WARNING",
                        inprocess_workers=False)
    db = Database.from_settings(settings)
    real_add, real_write = Tallies.add, Tallies.write

    async def no_write(self, session):  # noqa: ANN001, ANN202
        return None

    out = []
    try:
        principal, _day, side = await reports_bench.setup(db, settings)
        await reports_bench.seal_many(db, settings, principal, side, 200, 50)  # warm-up
        for per_txn, block in ((1, args.block_seals), (100, 1000)):
            took, sealed = {"on": 0.0, "off": 0.0}, {"on": 0, "off": 0}
            for b in range(args.blocks * 2):
                mode = ("on", "off")[b % 2] if (b // 2) % 2 == 0 else ("off", "on")[b % 2]
                Tallies.add = real_add if mode == "on" else (lambda self, **kw: None)
                Tallies.write = real_write if mode == "on" else no_write
                took[mode] += await reports_bench.seal_many(db, settings, principal, side, block, per_txn)
                sealed[mode] += block
            Tallies.add, Tallies.write = real_add, real_write
            rate = {m: sealed[m] / took[m] for m in took}
            row = {"per_txn": per_txn, "seals_per_mode": sealed["on"], "seals_per_s_on": round(rate["on"], 1),
                   "seals_per_s_off": round(rate["off"], 1), "ratio_off_on": round(rate["off"] / rate["on"], 3),
                   "us_per_seal_added": round((1 / rate["on"] - 1 / rate["off"]) * 1e6, 1)}
            out.append(row)
            print(f"   {per_txn:>4}/txn: sums on {row['seals_per_s_on']:>8,.0f}/s  off {row['seals_per_s_off']:>8,.0f}/s"
                  f"  ratio off/on {row['ratio_off_on']:.3f}  (+{row['us_per_seal_added']} us per seal)", flush=True)
    finally:
        Tallies.add, Tallies.write = real_add, real_write
        await db.dispose()
    return out


def overhead(args: argparse.Namespace) -> list[dict]:
    name = f"stalela_bench_{secrets.token_hex(4)}"
    with psycopg.connect(seal_bench.PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        with tempfile.TemporaryDirectory(prefix="stalela-bench-analytics-") as tmp:
            print("overhead of the analytics sums on a seal (service layer, interleaved blocks, sums on/off)",
                  flush=True)
            return asyncio.run(_overhead(seal_bench.PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", tmp, args))
    finally:
        with psycopg.connect(seal_bench.PG_ADMIN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--invoices", type=int, default=1_000_000, help="invoices the sums stand for")
    parser.add_argument("--sealed", type=int, default=5_000, help="of them, sealed through the API")
    parser.add_argument("--days", type=int, default=730, help="business days they are spread over")
    parser.add_argument("--outlets", type=int, default=20)
    parser.add_argument("--buyers", type=int, default=5_000, help="distinct buyers (a few buy most)")
    parser.add_argument("--requests", type=int, default=200, help="requests per route and kind (cold, warm)")
    parser.add_argument("--blocks", type=int, default=4, help="blocks per mode in the overhead comparison")
    parser.add_argument("--block-seals", type=int, default=200, help="seals per block at one per transaction")
    parser.add_argument("--only", default="data,overhead", help="parts to run: data, overhead")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/<date>.json")
    args, _ = parser.parse_known_args(argv)  # bench/run.py passes every bench the same arguments
    parts = set(args.only.split(","))
    info = {"cpu_count": os.cpu_count(), "python": platform.python_version(), **seal_bench.pg_info(),
            "git_commit": seal_bench.git_commit(), "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    print(f"PostgreSQL {info.get('postgres_version', '')} fsync={info['fsync']} "
          f"synchronous_commit={info['synchronous_commit']}", flush=True)
    result: dict = {"machine": info}
    if "data" in parts:
        result["queries"] = data_and_queries(args)
    if "overhead" in parts:
        result["overhead"] = overhead(args)
    if not args.no_save:
        seal_bench.RESULTS.mkdir(exist_ok=True)
        path = seal_bench.RESULTS / f"{dt.date.today().isoformat()}.json"
        data = json.loads(path.read_text()) if path.exists() else {}
        data.setdefault("benches", {})["analytics"] = result
        tmp_path = path.with_suffix(".json.tmp")
        tmp_path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
        tmp_path.replace(path)
        print(f"results written to {path.relative_to(seal_bench.ROOT)}")
    queries = result.get("queries")
    return 1 if queries and queries["server_log_problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
