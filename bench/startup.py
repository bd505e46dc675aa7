"""Time from `stalela serve` to `/readyz` = 200 on PostgreSQL: the outage a crash (or a deploy) costs.

Usage: .venv/bin/python bench/startup.py [--workers 1,2] [--repeat 3]

For each worker count, on one throwaway database migrated beforehand (so this is a *restart*, the
case after a kill, not a first install):
  baseline   a bare uvicorn hello-world app answering /readyz, started with `python -m uvicorn
             --workers N` the same way (interpreter, uvicorn and process spawning, nothing of ours)
  stalela    `python -m stalela.cli.main serve --workers N`
Each is started --repeat times; the median and the best wall time are printed, stalela as a ratio of
the baseline measured in the same run, and the CPU seconds the process tree had used when it became
ready (master and workers, from /proc): on a shared, noisy machine the CPU figure moves much less than
the wall time. Readiness is polled every 20 ms. Exits 1 if a start failed.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
HELLO = '''
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"status": "ok"}'})
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and all its descendants still running (Linux /proc)."""
    ticks = 0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                ticks += round(tree_cpu_seconds(int(child)) * os.sysconf("SC_CLK_TCK"))
    except (FileNotFoundError, ProcessLookupError):
        pass
    return ticks / os.sysconf("SC_CLK_TCK")


def time_to_ready(argv: list[str], env: dict[str, str], port: int, log: Path,
                  timeout: float = 60) -> tuple[float, float]:
    """Seconds from spawning ``argv`` to the first 200 on /readyz, and the CPU seconds used by then; the
    process group is then stopped."""
    started = time.perf_counter()
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while time.perf_counter() - started < timeout:
            if proc.poll() is not None:
                raise RuntimeError(f"{argv[2:4]} exited with {proc.returncode}; see {log}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    if r.status == 200:
                        return time.perf_counter() - started, tree_cpu_seconds(proc.pid)
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.02)
        raise RuntimeError(f"{argv[2:4]} not ready after {timeout} s; see {log}")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--duration", type=float, default=None, help="ignored (bench/run.py passes it to all)")
    args, _ = parser.parse_known_args(argv)

    name = f"stalela_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    tmp = Path(tempfile.mkdtemp(prefix="stalela-startup-"))
    (tmp / "hello_app.py").write_text(HELLO)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STALELA_")}
    env.update({"STALELA_DATABASE_URL": url, "STALELA_DATA_DIR": str(tmp / "var"), "STALELA_DEMO": "false",
                "STALELA_MASTER_KEY": "6d" * 32, "STALELA_LOG_LEVEL": "WARNING", "PYTHONPATH": str(tmp)})
    failed = False
    try:
        subprocess.run([sys.executable, "-m", "stalela.cli.main", "migrate"], env=env, cwd=ROOT, check=True,
                       capture_output=True)
        print(f"{'workers':>7} {'target':9} {'median s':>9} {'best s':>7} {'ratio':>6} {'cpu s':>6}")
        for workers in [int(w) for w in args.workers.split(",")]:
            results: dict[str, list[float]] = {"baseline": [], "stalela": []}
            cpu: dict[str, list[float]] = {"baseline": [], "stalela": []}
            for _ in range(args.repeat):
                for target in results:
                    port = free_port()
                    cmd = ([sys.executable, "-m", "uvicorn", "hello_app:app", "--port", str(port),
                            "--workers", str(workers), "--log-level", "warning"] if target == "baseline" else
                           [sys.executable, "-m", "stalela.cli.main", "serve", "--port", str(port),
                            "--workers", str(workers)])
                    try:
                        wall, used = time_to_ready(cmd, env, port, tmp / f"{target}.log")
                        results[target].append(wall)
                        cpu[target].append(used)
                    except RuntimeError as exc:
                        print(f"error: {exc}", file=sys.stderr)
                        failed = True
            base = statistics.median(results["baseline"]) if results["baseline"] else float("nan")
            for target, times in results.items():
                if times:
                    median = statistics.median(times)
                    print(f"{workers:>7} {target:9} {median:>9.2f} {min(times):>7.2f} {median / base:>6.1f} "
                          f"{statistics.median(cpu[target]):>6.2f}", flush=True)
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
