"""Invoice drafting by the offline rule parser: drafts per second and latency percentiles over the
hand-written evaluation set (src/stalela/assistants/parser/evalset), in this process, one core.

Usage: .venv/bin/python bench/drafts.py [--rounds 20] [--http 300] [--mcp 300]

Targets (issue 19): P95 < 50 ms per draft in process; with ``--http N``, also N requests of
POST /v1/invoice-drafts on the real server (PostgreSQL, one API process, one keep-alive client, the
evaluation set's DRC texts in turn; a 201 and a 422 draft_low_confidence both count: both are stored
drafts), P95 < 300 ms, next to GET /v1/outlets in the same run as the baseline. With ``--mcp N``, N MCP
``tools/call`` round trips per tool (the SDK's client over Streamable HTTP to /mcp, one keep-alive
connection: ``get_draft``, ``list_invoices``, ``draft_invoice``), next to the REST route each stands for.
"""
from __future__ import annotations

import argparse
import math
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from stalela.assistants.parser import PARSER_VERSION, parse_request  # noqa: E402
from stalela.assistants.parser.evaluate import context_of, load_cases  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="passes over the evaluation set")
    parser.add_argument("--http", type=int, default=0, help="also time this many POST /v1/invoice-drafts")
    parser.add_argument("--mcp", type=int, default=0, help="also time this many MCP tools/call per tool")
    args = parser.parse_args()
    cases = [(c["text"], context_of(c), c.get("locale")) for c in load_cases()]
    for text, ctx, locale in cases:  # warm-up: compiled regexes, the calibration table
        parse_request(text, ctx, locale)
    timings: list[float] = []
    started = time.perf_counter()
    for _ in range(args.rounds):
        for text, ctx, locale in cases:
            t0 = time.perf_counter()
            parse_request(text, ctx, locale)
            timings.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    timings.sort()
    p95 = timings[math.ceil(len(timings) * 0.95) - 1]  # nearest rank: the smallest value >= 95 % of them
    p50 = statistics.median(timings)
    print(f"rule parser {PARSER_VERSION} on {platform.python_implementation()} {platform.python_version()}, "
          f"{len(cases)} cases x {args.rounds} rounds")
    print(f"drafts/s: {len(timings) / elapsed:,.0f}")
    print(f"latency ms: P50 {p50 * 1000:.2f}, P95 {p95 * 1000:.2f}, max {timings[-1] * 1000:.2f} (target P95 < 50)")
    if args.http:
        http(args.http, [c["text"] for c in load_cases() if c["jur"] == "CD"])
    if args.mcp:
        import asyncio

        asyncio.run(mcp(args.mcp, [c["text"] for c in load_cases() if c["jur"] == "CD"]))
    return 0 if p95 < 0.05 else 1


def _percentiles(timings: list[float]) -> tuple[float, float]:
    timings = sorted(timings)
    return statistics.median(timings) * 1000, timings[math.ceil(len(timings) * 0.95) - 1] * 1000


def _tenant(seal_bench, srv, name: str, tax_id: str) -> str:  # noqa: ANN001
    """A DRC tenant with one outlet on the bench's server; its API key."""
    status, created = seal_bench.api(srv.base, "POST", "/v1/tenants", srv.token,
                                     {"name": name, "tax_id": tax_id, "jurisdiction": "CD"})
    assert status == 201, created
    status, outlet = seal_bench.api(srv.base, "POST", "/v1/outlets", created["api_key"],
                                    {"code": "MAIN", "name": "Main"})
    assert status == 201, outlet
    return created["api_key"]


def http(n: int, texts: list[str]) -> None:
    import httpx

    import seal as seal_bench  # bench/seal.py: the real server on a fresh PostgreSQL database

    with seal_bench.Server(1, 8) as srv:
        key = _tenant(seal_bench, srv, "Drafts bench", "DB1")
        drafts, baseline, outcomes = [], [], {}
        with httpx.Client(base_url=srv.base, timeout=30, headers={"Authorization": f"Bearer {key}"}) as c:
            for i in range(n):  # interleaved, so both see the same machine
                t0 = time.perf_counter()
                r = c.post("/v1/invoice-drafts", json={"text": texts[i % len(texts)]})
                drafts.append(time.perf_counter() - t0)
                assert r.status_code in (201, 422), r.text[:300]
                outcomes[r.status_code] = outcomes.get(r.status_code, 0) + 1
                t0 = time.perf_counter()
                assert c.get("/v1/outlets").status_code == 200
                baseline.append(time.perf_counter() - t0)
    (d50, d95), (b50, b95) = _percentiles(drafts), _percentiles(baseline)
    print(f"POST /v1/invoice-drafts over HTTP, {n} requests {outcomes}: P50 {d50:.1f} ms, P95 {d95:.1f} ms "
          f"(target P95 < 300)")
    print(f"GET /v1/outlets (baseline, same run): P50 {b50:.1f} ms, P95 {b95:.1f} ms; draft / baseline P50 {d50 / b50:.2f}")


async def mcp(n: int, texts: list[str]) -> None:
    import httpx
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    import seal as seal_bench

    with seal_bench.Server(1, 8) as srv:
        key = _tenant(seal_bench, srv, "MCP bench", "MB1")
        headers = {"Authorization": f"Bearer {key}"}
        timings: dict[str, list[float]] = {}
        async with httpx2.AsyncClient(headers=headers, timeout=30) as http_client, \
                httpx.AsyncClient(base_url=srv.base, headers=headers, timeout=30) as rest, \
                Client(streamable_http_client(f"{srv.base}/mcp", http_client=http_client)) as client:
            first = await client.call_tool("draft_invoice", {"text": texts[0]})
            draft_id = first.structured_content["id"]

            async def timed(name: str, call) -> None:  # noqa: ANN001
                t0 = time.perf_counter()
                result = await call()
                timings.setdefault(name, []).append(time.perf_counter() - t0)
                failed = getattr(result, "is_error", False) or getattr(result, "status_code", 200) >= 400
                assert not failed, name

            for i in range(n):  # interleaved, so every series sees the same machine
                await timed("MCP get_draft", lambda: client.call_tool("get_draft", {"draft_id": draft_id}))
                await timed("REST GET /v1/invoice-drafts/{id}", lambda: rest.get(f"/v1/invoice-drafts/{draft_id}"))
                await timed("MCP list_invoices", lambda: client.call_tool("list_invoices", {"limit": 10}))
                await timed("REST GET /v1/invoices", lambda: rest.get("/v1/invoices?limit=10"))
                text = texts[i % len(texts)]
                await timed("MCP draft_invoice", lambda: client.call_tool("draft_invoice", {"text": text}))
    rest_of = {"MCP get_draft": "REST GET /v1/invoice-drafts/{id}", "MCP list_invoices": "REST GET /v1/invoices"}
    print(f"MCP tools/call round trips over Streamable HTTP, {n} per tool:")
    for name, series in timings.items():
        p50, p95 = _percentiles(series)
        line = f"  {name}: P50 {p50:.1f} ms, P95 {p95:.1f} ms"
        if name in rest_of:
            r50, _ = _percentiles(timings[rest_of[name]])
            line += f"; MCP / REST P50 {p50 / r50:.2f}"
        print(line)


if __name__ == "__main__":
    raise SystemExit(main())
