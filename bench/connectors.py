"""Marketplace connectors end to end on the real server (PostgreSQL, one API process with its in-process
workers) and the Shopify simulator on loopback.

Usage: .venv/bin/python bench/connectors.py [--acks 500] [--orders 300] [--clients 8]

1. Webhook acknowledgement: ``--acks`` signed ``orders/paid`` deliveries (whole Shopify orders, distinct
   ids) posted by ``--clients`` concurrent clients, latency P50/P95/P99; target P99 < 200 ms. Baseline in the
   same run, interleaved: ``GET /v1/outlets`` with an API key. The workers seal the orders meanwhile, as
   they would in production, so the acknowledgements are measured under that load.
2. Orders invoiced per second, end to end: ``--orders`` orders paid in the simulator, each delivered as a
   signed webhook by the simulator to the server, read, mapped, sealed and written back (metafields);
   timed until every order is invoiced. Baseline in the same run: the same number of invoices sealed by
   ``POST /v1/invoices`` from ``--clients`` clients.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402

import seal as seal_bench  # noqa: E402  bench/seal.py: the real server on a fresh PostgreSQL database
from stalela.connectors import signatures  # noqa: E402
from stalela.connectors.simulator import MarketplaceSimulator  # noqa: E402

SECRET = "bench-shopify-secret"
LINE = {"title": "Sac de riz 25 kg", "price": "45000.00", "quantity": 1, "tax_lines": [{"title": "TVA", "rate": "0.16"}]}


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[max(0, math.ceil(len(values) * q) - 1)] * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--acks", type=int, default=500)
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    env = {"STALELA_WEBHOOKS_ALLOW_PRIVATE": "true"}
    with seal_bench.Server(1, 8, env=env) as srv, MarketplaceSimulator("shopify", secret=SECRET) as sim:
        status, created = seal_bench.api(srv.base, "POST", "/v1/tenants", srv.token,
                                         {"name": "Connectors bench", "tax_id": "CB1", "jurisdiction": "CD"})
        assert status == 201, created
        key = created["api_key"]
        status, outlet = seal_bench.api(srv.base, "POST", "/v1/outlets", key, {"code": "WEB", "name": "Web"})
        assert status == 201, outlet
        creds = sim.sim.default_credentials
        status, conn = seal_bench.api(srv.base, "POST", "/v1/connections", key, {
            "platform": "shopify", "shop": creds["shop_domain"], "outlet_id": outlet["id"], "api_base_url": sim.url,
            "credentials": {"access_token": creds["access_token"], "webhook_secret": SECRET}})
        assert status == 201, conn
        control = httpx.Client(base_url=sim.url, timeout=30)
        headers = {"Authorization": f"Bearer {key}"}
        acks(srv, control, conn, headers, args)
        throughput(srv, control, conn, headers, outlet["id"], args)
    problems = srv.log_problems()
    print(f"server log: {len(problems)} error lines" + (f" (kept in {srv.kept_log})" if problems else ""))
    return 0


def _order(control: httpx.Client, paid: bool) -> dict:
    order = control.post("/_sim/orders", json={"currency": "CDF", "line_items": [LINE],
                                               "financial_status": "paid" if paid else "pending"}).json()
    return order


def acks(srv, control: httpx.Client, conn: dict, headers: dict, args) -> None:  # noqa: ANN001
    bodies = []
    for _ in range(args.acks):
        order = _order(control, paid=True)
        bodies.append(json.dumps(control.get(f"/_sim/orders/{order['id']}").json() | {"metafields": None},
                                 separators=(",", ":")).encode())
    url = srv.base + conn["webhook_url"]
    acks_s, base_s, lock = [], [], threading.Lock()

    def one(i: int, client: httpx.Client) -> None:
        body = bodies[i]
        h = {"Content-Type": "application/json", "X-Shopify-Topic": "orders/paid", "X-Shopify-Event-Id": f"bench-{i}",
             "X-Shopify-Hmac-Sha256": signatures.expected("shopify", SECRET, body)}
        t0 = time.perf_counter()
        r = client.post(url, content=body, headers=h)
        t1 = time.perf_counter()
        assert r.status_code == 200 and r.json()["delivery_id"], r.text
        b = client.get(srv.base + "/v1/outlets", headers=headers)
        t2 = time.perf_counter()
        assert b.status_code == 200
        with lock:
            acks_s.append(t1 - t0)
            base_s.append(t2 - t1)

    clients = [httpx.Client(timeout=30) for _ in range(args.clients)]
    started = time.perf_counter()
    with ThreadPoolExecutor(args.clients) as pool:
        list(pool.map(lambda i: one(i, clients[i % args.clients]), range(args.acks)))
    elapsed = time.perf_counter() - started
    print(f"webhook acknowledgement, {args.acks} signed orders/paid from {args.clients} clients "
          f"({args.acks / elapsed:.0f}/s while the workers seal them):")
    print(f"  POST /v1/connectors/shopify/{{id}}/webhooks: P50 {pct(acks_s, .5):.1f} ms, P95 {pct(acks_s, .95):.1f} ms, "
          f"P99 {pct(acks_s, .99):.1f} ms (target P99 < 200)")
    print(f"  GET /v1/outlets (baseline, same run): P50 {pct(base_s, .5):.1f} ms, P95 {pct(base_s, .95):.1f} ms, "
          f"P99 {pct(base_s, .99):.1f} ms; webhook / baseline P50 {statistics.median(acks_s) / statistics.median(base_s):.2f}")
    _wait_invoiced(srv, conn, headers, args.acks, timeout=600)


def _counts(srv, conn: dict, headers: dict) -> dict:  # noqa: ANN001
    return httpx.get(f"{srv.base}/v1/connections/{conn['id']}", headers=headers, timeout=30).json()["orders"]


def _wait_invoiced(srv, conn: dict, headers: dict, n: int, timeout: float) -> float:  # noqa: ANN001
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        counts = _counts(srv, conn, headers)
        if counts["invoiced"] >= n:
            return time.perf_counter() - started
        time.sleep(0.1)
    raise AssertionError(f"not all invoiced after {timeout} s: {counts}")


def throughput(srv, control: httpx.Client, conn: dict, headers: dict, outlet_id: str, args) -> None:  # noqa: ANN001
    already = _counts(srv, conn, headers)["invoiced"]
    control.post("/_sim/webhooks", json={"address": srv.base + conn["webhook_url"], "topics": ["orders/paid"]})
    orders = [_order(control, paid=False) for _ in range(args.orders)]
    started = time.perf_counter()
    for order in orders:
        control.post(f"/_sim/orders/{order['id']}/pay")
    _wait_invoiced(srv, conn, headers, already + args.orders, timeout=900)
    elapsed = time.perf_counter() - started
    written = sum(1 for o in orders[:20] if control.get(f"/_sim/orders/{o['id']}").json().get("metafields"))
    # Baseline: the same number of invoices through POST /v1/invoices, --clients at once.
    body = {"outlet_id": outlet_id, "type": "FV", "lines": [{"description": "Sac de riz 25 kg", "item_type": "BIE",
                                                             "tax_group": "B", "quantity": "1", "unit_price": "45000.00"}]}
    clients = [httpx.Client(timeout=30, headers=headers) for _ in range(args.clients)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(args.clients) as pool:
        codes = list(pool.map(lambda i: clients[i % args.clients].post(srv.base + "/v1/invoices", json=body).status_code,
                              range(args.orders)))
    direct = time.perf_counter() - t0
    assert set(codes) == {201}, set(codes)
    print(f"orders invoiced end to end, {args.orders} paid in the simulator: {args.orders / elapsed:.1f} orders/s "
          f"({elapsed:.1f} s; write-back seen on {written}/20 sampled orders)")
    print(f"  POST /v1/invoices (baseline, same run, {args.clients} clients): {args.orders / direct:.1f} invoices/s; "
          f"connector / direct {(args.orders / elapsed) / (args.orders / direct):.2f}")


if __name__ == "__main__":
    raise SystemExit(main())
