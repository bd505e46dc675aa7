"""What the merchant's experience costs per request: pages, PDFs and errors in three languages.

Usage: .venv/bin/python bench/experience.py [--rounds 15] [--block 10] [--no-save]
Starts the real `stalela serve` (one worker) on a throwaway PostgreSQL database (bench/seal.py's
Server), creates a DRC tenant, seals a sale with a Latin buyer, one with an Arabic and Cyrillic buyer
(HarfBuzz shaping in the PDF) and a credit note, then times requests one at a time from one keep-alive
connection, scenarios interleaved in blocks of --block requests for --rounds rounds so that the
machine's noise falls on all of them alike:

  baseline        GET /v1/invoices/{id} (JSON: auth, one read, serialisation)
  verify en|fr|es the public verification page (HTML), by Accept-Language
  verify-unknown  a forged id: the translated HTML 404 page (fr)
  error en|fr     GET /v1/invoices/{unknown id}: problem+json 404, detail in English or French
  pdf a4 en|fr    the invoice PDF, A4, in English or French
  pdf receipt fr  the 80 mm receipt layout
  pdf a4 arabic   A4 (fr) for the invoice whose buyer's name is Arabic and Cyrillic (shaped)
  pdf credit fr   the credit note (negative amounts, citing its original)
  docs            GET /docs (Swagger UI's page, from vendored assets)
Prints p50/p95 latency (ms) and the ratio of each p50 to the baseline's p50 measured in the same run.
Exit 1 if any answer had an unexpected status.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
import seal as seal_bench  # noqa: E402  (Server, api, pg_info, git_commit, RESULTS)

SALE = {"type": "FV", "buyer": {"type": "PM", "name": "Boutique Lisanga SARL", "tax_id": "B1234567C"}, "lines": [
    {"description": "Sac de riz 25 kg", "item_type": "BIE", "tax_group": "B", "quantity": "2", "unit_price": "45000.00"},
    {"description": "Livraison", "item_type": "SER", "tax_group": "A", "quantity": "1", "unit_price": "5000"}]}
ARABIC = dict(SALE, buyer={"type": "PM", "name": "شركة النور للتجارة — ООО «Восток»", "tax_id": "B7654321D"})


def scenarios(srv: seal_bench.Server, key: str, sale: dict, arabic: dict, credit: dict) -> dict[str, tuple]:
    auth = {"Authorization": f"Bearer {key}"}

    def verify(inv: dict) -> str:
        return "/" + inv["qr"].split("://", 1)[1].split("/", 1)[1]

    forged = verify(sale).replace(sale["id"], "inv_" + "0" * 26)
    pdf = f"/v1/invoices/{sale['id']}/pdf"
    # name -> (path, headers, expected status)
    return {
        "baseline": (f"/v1/invoices/{sale['id']}", auth, 200),
        "verify en": (verify(sale), {"Accept-Language": "en"}, 200),
        "verify fr": (verify(sale), {"Accept-Language": "fr-CD,fr;q=0.9"}, 200),
        "verify es": (verify(sale), {"Accept-Language": "es-AR"}, 200),
        "verify-unknown fr": (forged, {"Accept-Language": "fr"}, 404),
        "error en": ("/v1/invoices/inv_" + "1" * 26, {**auth, "Accept-Language": "en"}, 404),
        "error fr": ("/v1/invoices/inv_" + "1" * 26, {**auth, "Accept-Language": "fr"}, 404),
        "pdf a4 en": (pdf + "?lang=en", auth, 200),
        "pdf a4 fr": (pdf + "?lang=fr", auth, 200),
        "pdf receipt fr": (pdf + "?lang=fr&layout=receipt", auth, 200),
        "pdf a4 arabic": (f"/v1/invoices/{arabic['id']}/pdf?lang=fr", auth, 200),
        "pdf credit fr": (f"/v1/invoices/{credit['id']}/pdf?lang=fr", auth, 200),
        "docs": ("/docs", {}, 200),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--block", type=int, default=10)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    timings: dict[str, list[float]] = {}
    bad: list[str] = []
    with seal_bench.Server(workers=1, concurrency=1) as srv:
        status, created = seal_bench.api(srv.base, "POST", "/v1/tenants", srv.token,
                                         {"name": "Bench Kin SARL", "tax_id": "A1234567B", "jurisdiction": "CD"})
        assert status == 201, created
        key = created["api_key"]
        status, outlet = seal_bench.api(srv.base, "POST", "/v1/outlets", key, {"code": "KIN1", "name": "Gombe"})
        assert status == 201, outlet
        sealed = []
        for body in (SALE, ARABIC):
            status, inv = seal_bench.api(srv.base, "POST", "/v1/invoices", key, dict(body, outlet_id=outlet["id"]))
            assert status == 201, inv
            sealed.append(inv)
        status, credit = seal_bench.api(srv.base, "POST", "/v1/invoices", key, {
            "outlet_id": outlet["id"], "type": "FA", "nature": "COR", "original": sealed[0]["fiscal_number"],
            "lines": [dict(SALE["lines"][0], quantity="1")]})
        assert status == 201, credit
        plan = scenarios(srv, key, sealed[0], sealed[1], credit)
        with httpx.Client(base_url=srv.base, timeout=60) as http:
            for name, (path, headers, _) in plan.items():  # warm-up: templates compiled, fonts loaded
                http.get(path, headers=headers)
            for _ in range(args.rounds):
                for name, (path, headers, expected) in plan.items():
                    for _ in range(args.block):
                        start = time.perf_counter()
                        r = http.get(path, headers=headers)
                        timings.setdefault(name, []).append((time.perf_counter() - start) * 1000)
                        if r.status_code != expected:
                            bad.append(f"{name}: {r.status_code} {r.text[:200]}")
    problems = srv.log_problems()  # the log is read when the server stops
    base = statistics.median(timings["baseline"])
    rows = []
    print(f"\n{'scenario':20} {'p50 ms':>8} {'p95 ms':>8} {'ratio':>7}")
    for name, values in timings.items():
        values.sort()
        p50, p95 = statistics.median(values), values[int(len(values) * 0.95) - 1]
        rows.append({"scenario": name, "p50_ms": round(p50, 2), "p95_ms": round(p95, 2),
                     "ratio_to_baseline": round(p50 / base, 2), "requests": len(values)})
        print(f"{name:20} {p50:8.2f} {p95:8.2f} {p50 / base:7.2f}")
    if bad or problems:
        print(f"\n{len(bad)} unexpected answers, {len(problems)} server log problems", file=sys.stderr)
        for line in (bad + problems)[:10]:
            print("  " + line, file=sys.stderr)
    if not args.no_save:
        seal_bench.RESULTS.mkdir(exist_ok=True)
        path = seal_bench.RESULTS / f"{time.strftime('%Y-%m-%d')}.json"
        saved = json.loads(path.read_text()) if path.exists() else {}
        saved["experience"] = {"machine": {"python": platform.python_version(), **seal_bench.pg_info(),
                                           "commit": seal_bench.git_commit()}, "rows": rows}
        path.write_text(json.dumps(saved, indent=2) + "\n")
    return 1 if bad or problems else 0


if __name__ == "__main__":
    sys.exit(main())
