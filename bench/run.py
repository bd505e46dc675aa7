"""`make bench`: run every benchmark in bench/ with its default arguments, one after the other.

A benchmark is any bench/*.py except this file and helpers whose name starts with "_". Each runs in
its own process (so one crashing does not hide the others) and exits non-zero when a scenario had
errors; this runner then exits 1 after running the rest. Extra arguments are passed to every bench,
e.g. `.venv/bin/python bench/run.py --duration 3`.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    benches = sorted(p for p in HERE.glob("*.py") if p.name != "run.py" and not p.name.startswith("_"))
    failed = []
    for bench in benches:
        print(f"== {bench.name}", flush=True)
        start = time.monotonic()
        code = subprocess.call([sys.executable, str(bench), *argv], cwd=HERE.parent)
        print(f"== {bench.name}: exit {code} after {time.monotonic() - start:.0f} s", flush=True)
        if code != 0:
            failed.append(bench.name)
    if failed:
        print(f"benchmarks with errors: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
