"""Load generators for the benchmarks: wrk when installed, else a keep-alive asyncio client.

Both run in a process of their own, never in the benchmark's or the server's, and answer the same
dict: requests, rps, p50_ms, p99_ms, statuses {code: n}, created {outlet_id: number of 201s},
socket_errors, sample (first non-2xx answer), client_cpu (cores the generator used on average).

Run as a script (``python _loadgen.py`` with a JSON config on stdin) it is the asyncio client.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

LUA = Path(__file__).with_name("seal.lua")
_OUTLET_RE = re.compile(rb'"outlet_id":"([^"]+)"')


def available_backend(preferred: str = "auto") -> str:
    if preferred == "auto":
        return "wrk" if shutil.which("wrk") else "python"
    if preferred == "wrk" and not shutil.which("wrk"):
        raise SystemExit("--client wrk asked for, but wrk is not on PATH (apt-get install wrk)")
    return preferred


def run_load(backend: str, *, host: str, port: int, path: str, auth: str, body: str, outlets: list[str],
             concurrency: int, duration: float, auths: list[str] | None = None) -> dict:
    """Drive the server for `duration` seconds; `body` has OUTLET_ID where each outlet's id goes.

    Requests go round-robin over `outlets`. `auths`, when given, is parallel to `outlets`: each
    outlet's requests carry its own bearer token (outlets of several tenants, each with its API key).
    """
    if auths is not None and len(auths) != len(outlets):
        raise ValueError("auths must name one token per outlet")
    config = dict(host=host, port=port, path=path, auth=auth, body=body, outlets=outlets,
                  concurrency=concurrency, duration=duration, auths=auths)
    # RUSAGE_CHILDREN grows when a child is reaped: the delta around wait() is the generator's CPU,
    # the number that tells whether the client, not the server, set the pace.
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    if backend == "wrk":
        # Two threads: the machine has two cores and the server needs them more than wrk does.
        threads = max(1, min(2, concurrency))
        env = dict(os.environ, BENCH_PATH=path, BENCH_AUTH=auth, BENCH_BODY=body, BENCH_OUTLETS=",".join(outlets),
                   BENCH_AUTHS=",".join(auths or []))
        # wrk takes whole seconds only. A long --timeout: wrk's 2 s default drops slow answers that the server still commits,
        # which would break the gap-free count check.
        cmd = ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{max(1, round(duration))}s", "--timeout", "60s",
               "-s", str(LUA), f"http://{host}:{port}{path}"]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_RESULT ")), None)
        if proc.returncode != 0 or line is None:
            raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
        raw = json.loads(line.removeprefix("BENCH_RESULT "))
        seconds = raw["duration_us"] / 1e6
        result = dict(requests=int(raw["requests"]), seconds=seconds, p50_ms=raw["p50_us"] / 1000,
                      p99_ms=raw["p99_us"] / 1000, statuses={k: int(v) for k, v in raw["statuses"].items()},
                      created={k: int(v) for k, v in raw["created"].items()},
                      socket_errors=int(raw["socket_errors"]), sample=raw["sample"])
    else:
        proc = subprocess.run([sys.executable, __file__], input=json.dumps(config), capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"asyncio client failed: {proc.stderr.strip()}")
        result = json.loads(proc.stdout)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result["rps"] = result["requests"] / result["seconds"] if result["seconds"] else 0.0
    result["client_cpu"] = cpu / wall if wall else 0.0
    result["backend"] = backend
    return result


# ---- the asyncio client -------------------------------------------------------------------------
# Raw HTTP/1.1 on asyncio streams rather than httpx: httpx spends ~10x more CPU per request, which on
# a 2-core machine would make the client the bottleneck of the baseline. Even so one Python process
# tops out at a few thousand requests/s, i.e. around the baseline's rate: seal.py prints client_cpu so
# a reader can see when the baseline (and so the ratio) is client-bound (client_cpu close to 1.0).

async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, chunked, close = 0, False, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value:
            chunked = True
        elif name == b"connection" and value == b"close":
            close = True
    if not chunked:
        return status, await reader.readexactly(length), close
    body = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        chunk = await reader.readexactly(size + 2)
        if size == 0:
            return status, bytes(body), close
        body += chunk[:-2]


async def _client(config: dict) -> dict:
    host, port, path = config["host"], config["port"], config["path"]
    head = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
    outlets = config["outlets"] or [None]
    auths = config.get("auths") or [config["auth"]] * len(outlets)
    payloads = []
    for outlet, auth in zip(outlets, auths):
        body = (config["body"] if outlet is None else config["body"].replace("OUTLET_ID", outlet)).encode()
        line = f"Authorization: Bearer {auth}\r\n" if auth else ""
        payloads.append((head + line + f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    created: dict[str, int] = {}
    state = {"next": 0, "socket_errors": 0, "sample": ""}
    deadline = time.perf_counter() + config["duration"]

    async def worker() -> None:
        reader = writer = None
        while time.perf_counter() < deadline:
            payload = payloads[state["next"] % len(payloads)]
            state["next"] += 1
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                t0 = time.perf_counter()
                writer.write(payload)
                status, body, close = await _read_response(reader)
                latencies.append(time.perf_counter() - t0)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                state["socket_errors"] += 1
                if writer is not None:
                    writer.close()
                reader = writer = None
                continue
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            if status == 201:
                match = _OUTLET_RE.search(body)
                if match:
                    outlet = match.group(1).decode()
                    created[outlet] = created.get(outlet, 0) + 1
            elif not 200 <= status < 300 and not state["sample"]:
                state["sample"] = f"{status} {body[:400].decode(errors='replace')}"
            if close:
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(config["concurrency"])))
    seconds = time.perf_counter() - start
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000 if latencies else 0.0

    return dict(requests=len(latencies), seconds=seconds, p50_ms=pct(50), p99_ms=pct(99), statuses=statuses,
                created=created, socket_errors=state["socket_errors"], sample=state["sample"])


if __name__ == "__main__":
    try:
        import uvloop  # the server's event loop too; cuts the client's CPU per request
    except ImportError:
        uvloop = None
    cfg = json.load(sys.stdin)
    runner = uvloop.run if uvloop else asyncio.run
    print(json.dumps(runner(_client(cfg))))
