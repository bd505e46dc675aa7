"""Privacy: what per-subject encryption adds to a seal, erasing a subject on many invoices, a tenant export.

Usage: .venv/bin/python bench/privacy.py [--duration 8] [--rounds 3] [--concurrency 32] [--outlets 16]
                                         [--subject-invoices 10000] [--export-invoices 1000000]
                                         [--only seal,erasure,export] [--no-save]

The real `stalela serve` (seal.py's Server: PostgreSQL, 1 worker, in-process background work) driven from
this process. Scenarios:
  seal        POST /v1/invoices round-robin over --outlets outlets, alternating (--rounds times each, so drift
              hits both alike) two bodies of the same size: the baseline's buyer {"type": "PP", "name": null-ish}
              carries nothing personal (committed to, stored in clear), the measured one names a person
              (name, e-mail, tax id, phone: looked up by pseudonym, AES-GCM under its subject key). Ratio of
              the medians = the cost of per-subject encryption for a returning customer.
  new-subject the same, with a new person on every invoice (a subject and its wrapped key created per seal),
              driven by an asyncio client at --concurrency; baseline: the same client, nothing personal.
  erasure     --subject-invoices invoices of one person (batch API), then an erasure request: time to
              `completed`, and that the tenant's Merkle root did not change.
  export      --export-invoices invoices (batch API), then a tenant export: time to `ready`, the worker's peak
              RSS before/during (bounded: streamed), the archive's size.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
import seal as seal_bench  # noqa: E402
from _loadgen import available_backend, run_load  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
LINES = ('"lines": [{"description": "Sac de riz 25 kg", "item_type": "BIE", "tax_group": "B", "quantity": "2", '
         '"unit_price": "45000.00"}]')
# Same length on purpose (JSON parsing is not what is measured): padding in the baseline's name-less buyer.
PERSON = ('{"type": "PP", "name": "Jeanne Mukendi Kabasele", "email": "jeanne.mukendi@example.cd", '
          '"tax_id": "CD-PP-99881", "phone": "+243815550101"}')
NOBODY = '{"type": "PP"' + " " * (len(PERSON) - len('{"type": "PP"') - 1) + "}"
BODY = '{"outlet_id": "OUTLET_ID", "type": "FV", "buyer": BUYER, ' + LINES + "}"


def _tenant(srv: seal_bench.Server, outlets: int) -> tuple[str, list[str]]:
    status, created = seal_bench.api(srv.base, "POST", "/v1/tenants", srv.token,
                                     {"name": "Privacy Bench SARL", "tax_id": "B123", "jurisdiction": "CD"})
    assert status == 201, created
    key = created["api_key"]
    ids = []
    for i in range(outlets):
        status, outlet = seal_bench.api(srv.base, "POST", "/v1/outlets", key, {"code": f"P{i + 1}", "name": f"P {i + 1}"})
        assert status == 201, outlet
        ids.append(outlet["id"])
    return key, ids


def bench_seal(srv: seal_bench.Server, key: str, outlets: list[str], args: argparse.Namespace) -> dict:
    backend = available_backend("auto")
    common = dict(host="127.0.0.1", port=srv.port, path="/v1/invoices", auth=key, outlets=outlets,
                  concurrency=args.concurrency)
    run_load(backend, body=BODY.replace("BUYER", PERSON), duration=2, **common)  # warm-up: pools, caches
    rates: dict[str, list[float]] = {"nobody": [], "person": []}
    for _ in range(args.rounds):
        for name, buyer in (("nobody", NOBODY), ("person", PERSON)):
            r = run_load(backend, body=BODY.replace("BUYER", buyer), duration=args.duration, **common)
            bad = sum(n for code, n in r["statuses"].items() if not code.startswith("2")) + r["socket_errors"]
            assert bad == 0, r["statuses"]
            rates[name].append(r["rps"])
            seal_bench.wait_quiet(srv)
    med = {k: statistics.median(v) for k, v in rates.items()}
    return {"client": backend, "rates": rates, "median": med, "ratio": med["person"] / med["nobody"],
            "overhead_pct": 100 * (1 - med["person"] / med["nobody"])}


async def _open_client(srv: seal_bench.Server, key: str, outlets: list[str], seconds: float, concurrency: int,
                       personal: bool) -> float:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    done, stop = 0, time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=srv.base, headers=headers, timeout=60,
                                 limits=httpx.Limits(max_connections=concurrency)) as client:
        async def worker(w: int) -> None:
            nonlocal done
            i = 0
            while time.monotonic() < stop:
                i += 1
                buyer = ({"type": "PP", "name": f"Client {w}-{i}", "email": f"c{w}.{i}.{time.monotonic_ns()}@example.cd"}
                         if personal else {"type": "PP"})
                body = {"outlet_id": outlets[(w + i) % len(outlets)], "type": "FV", "buyer": buyer,
                        "lines": json.loads("{" + LINES + "}")["lines"]}
                r = await client.post("/v1/invoices", json=body)
                assert r.status_code == 201, r.text
                done += 1
        start = time.monotonic()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        return done / (time.monotonic() - start)


def bench_new_subject(srv: seal_bench.Server, key: str, outlets: list[str], args: argparse.Namespace) -> dict:
    rates: dict[str, list[float]] = {"nobody": [], "new_person": []}
    for _ in range(args.rounds):
        for name, personal in (("nobody", False), ("new_person", True)):
            rates[name].append(asyncio.run(_open_client(srv, key, outlets, args.duration, args.concurrency, personal)))
            seal_bench.wait_quiet(srv)
    med = {k: statistics.median(v) for k, v in rates.items()}
    return {"rates": rates, "median": med, "ratio": med["new_person"] / med["nobody"],
            "overhead_pct": 100 * (1 - med["new_person"] / med["nobody"])}


async def _seal_batches(srv: seal_bench.Server, key: str, outlets: list[str], total: int, buyer) -> float:  # noqa: ANN001
    """``total`` invoices through POST /v1/invoices/batch (1,000 a call, 2 clients); ``buyer(i)`` names each."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    lines = json.loads("{" + LINES + "}")["lines"]
    sent = 0
    start = time.monotonic()
    async with httpx.AsyncClient(base_url=srv.base, headers=headers, timeout=600) as client:
        async def worker() -> None:
            nonlocal sent
            while sent < total:
                n = min(1000, total - sent)
                first, sent = sent, sent + n
                items = [{"invoice": {"outlet_id": outlets[(first + i) % len(outlets)], "type": "FV",
                                      "buyer": buyer(first + i), "lines": lines}} for i in range(n)]
                r = await client.post("/v1/invoices/batch", json={"items": items})
                assert r.status_code == 200 and all(x["status"] == 201 for x in r.json()["data"]), r.text[:500]
        await asyncio.gather(worker(), worker())
    return time.monotonic() - start


async def _poll(client: httpx.AsyncClient, path: str, done: set[str], timeout: float = 7200) -> tuple[dict, float]:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        body = (await client.get(path)).json()
        if body.get("status") in done:
            return body, time.monotonic() - start
        await asyncio.sleep(0.05)
    raise TimeoutError(path)


async def bench_erasure(srv: seal_bench.Server, key: str, outlets: list[str], invoices: int) -> dict:
    person = {"type": "PP", "name": "Patrice Lumbala", "email": "patrice@example.cd", "tax_id": "CD-PP-4242"}
    seal_s = await _seal_batches(srv, key, outlets, invoices, lambda i: person)
    seal_bench.wait_quiet(srv)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=srv.base, headers=headers, timeout=60) as client:
        r = await client.post("/v1/privacy/erasure-requests", json={"subject": {"email": person["email"]}})
        assert r.status_code == 202, r.text
        done, seconds = await _poll(client, f"/v1/privacy/erasure-requests/{r.json()['id']}", {"completed"})
    payload = done["receipt"]["payload"]
    return {"invoices": invoices, "seal_s": seal_s, "erasure_s": seconds, "restricted": done["restricted"],
            "root_unchanged": payload["merkle_root_before"] == payload["merkle_root_after"]}


def _settle_outbox(srv: seal_bench.Server) -> None:
    """Mark the sealed invoices' events delivered: with no device and no webhook they are no-ops, but a
    million of them would queue ahead of the export's own event, and the queue is not what is measured."""
    import psycopg  # noqa: PLC0415

    with psycopg.connect(srv.dsn, autocommit=True) as conn:
        conn.execute("UPDATE outbox SET status = 'done', done_at = now() "
                     "WHERE topic = 'invoice.sealed' AND status = 'pending'")


async def bench_export(srv: seal_bench.Server, key: str, outlets: list[str], invoices: int, pdfs: bool) -> dict:
    seal_s = await _seal_batches(srv, key, outlets, invoices,
                                 lambda i: {"type": "PP", "name": f"Client {i % 5000}", "email": f"c{i % 5000}@example.cd"})
    seal_bench.wait_quiet(srv)
    _settle_outbox(srv)
    rss_before = sum(seal_bench.tree_rss_mb(srv.proc.pid).values())
    peak = [rss_before]
    stop = asyncio.Event()

    async def sample() -> None:
        while not stop.is_set():
            peak.append(sum(seal_bench.tree_rss_mb(srv.proc.pid).values()))
            await asyncio.sleep(0.5)

    sampler = asyncio.create_task(sample())
    async with httpx.AsyncClient(base_url=srv.base, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
        r = await client.post("/v1/privacy/exports", json={"scope": "tenant", "pdfs": pdfs})
        assert r.status_code == 202, r.text
        done, seconds = await _poll(client, f"/v1/privacy/exports/{r.json()['id']}", {"ready", "failed"})
        # Baseline in the same run: the audit export of the same invoices (signed, with inclusion proofs).
        r = await client.post("/v1/exports/audit", json={})
        assert r.status_code == 202, r.text
        audit, audit_s = await _poll(client, f"/v1/exports/{r.json()['id']}", {"ready", "failed"})
    stop.set()
    await sampler
    assert done["status"] == "ready" and audit["status"] == "ready", (done, audit)
    return {"invoices": invoices, "pdfs": pdfs, "seal_s": seal_s, "export_s": seconds, "size_mb": done["size"] / 1e6,
            "rss_before_mb": rss_before, "rss_peak_mb": max(peak), "sha256": done["sha256"],
            "audit_export_s": audit_s, "ratio_to_audit_export": seconds / audit_s}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=8)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--outlets", type=int, default=16)
    p.add_argument("--subject-invoices", type=int, default=10_000)
    p.add_argument("--export-invoices", type=int, default=1_000_000)
    p.add_argument("--export-pdfs", action="store_true",
                   help="with each invoice's PDF (~10 ms of CPU each: use a smaller --export-invoices)")
    p.add_argument("--only", default="seal,new-subject,erasure,export")
    p.add_argument("--no-save", action="store_true")
    args = p.parse_args(argv)
    only = set(args.only.split(","))
    out: dict = {"when": dt.datetime.now(dt.timezone.utc).isoformat(), "machine": platform.node(),
                 "commit": seal_bench.git_commit(), "args": vars(args)}
    with seal_bench.Server(1, args.concurrency) as srv:
        key, outlets = _tenant(srv, args.outlets)
        if "seal" in only:
            out["seal"] = r = bench_seal(srv, key, outlets, args)
            print(f"seal, returning customer: {r['median']['person']:.0f}/s vs {r['median']['nobody']:.0f}/s "
                  f"nothing personal -> ratio {r['ratio']:.3f} ({r['overhead_pct']:.1f} % overhead)")
        if "new-subject" in only:
            out["new_subject"] = r = bench_new_subject(srv, key, outlets, args)
            print(f"seal, new customer each time: {r['median']['new_person']:.0f}/s vs {r['median']['nobody']:.0f}/s "
                  f"-> ratio {r['ratio']:.3f} ({r['overhead_pct']:.1f} % overhead)")
        if "erasure" in only:
            out["erasure"] = r = asyncio.run(bench_erasure(srv, key, outlets, args.subject_invoices))
            print(f"erasure of a subject on {r['invoices']} invoices: {r['erasure_s']:.2f} s to completed "
                  f"(sealing them took {r['seal_s']:.1f} s); Merkle root before == after: {r['root_unchanged']}")
        if "export" in only:
            out["export"] = r = asyncio.run(bench_export(srv, key, outlets, args.export_invoices, args.export_pdfs))
            print(f"tenant export of {r['invoices']} invoices ({'with' if r['pdfs'] else 'without'} PDFs): "
                  f"{r['export_s']:.1f} s to ready ({r['invoices'] / r['export_s']:.0f} invoices/s), "
                  f"{r['size_mb']:.1f} MB; server RSS {r['rss_before_mb']:.0f} MB before, "
                  f"peak {r['rss_peak_mb']:.0f} MB while building (sealing took {r['seal_s']:.0f} s); "
                  f"baseline audit export {r['audit_export_s']:.1f} s -> ratio {r['ratio_to_audit_export']:.2f}")
    out["server_log_problems"] = srv.log_problems()[:5]
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"privacy-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
        path.write_text(json.dumps(out, indent=2))
        print(f"saved {path}")
    return 1 if out["server_log_problems"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
