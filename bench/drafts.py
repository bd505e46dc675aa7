"""Invoice drafting by the offline rule parser: drafts per second and latency percentiles over the
hand-written evaluation set (src/stalela/assistants/parser/evalset), in this process, one core.

Usage: .venv/bin/python bench/drafts.py [--rounds 20]

Target (issue 19): P95 < 50 ms per draft. Only the parser is measured: the drafting HTTP API
(POST /v1/invoice-drafts) and the MCP server do not exist yet, so their round trips are not here.
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

from stalela.assistants.parser import PARSER_VERSION, parse_request  # noqa: E402
from stalela.assistants.parser.evaluate import context_of, load_cases  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="passes over the evaluation set")
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
    return 0 if p95 < 0.05 else 1


if __name__ == "__main__":
    raise SystemExit(main())
