"""Load clients of bench/targets.py that wrk cannot be: the open-loop single-seal client and the batch
client, each run in a process of its own (``python bench/_targets_clients.py KIND`` with a JSON config on
stdin, the result as JSON on stdout), and the server's memory sampler.
"""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import seal  # noqa: E402  (the invoice body and the process-tree helpers)

INVOICE_OBJ = json.loads(seal.INVOICE)


class RssSampler(threading.Thread):
    """The resident memory of every process of the server's tree, once a second while it runs."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.stop_flag, self.samples = pid, threading.Event(), []

    def run(self) -> None:
        while not self.stop_flag.wait(1.0):
            self.samples.append(seal.tree_rss_mb(self.pid))

    def result(self) -> dict:
        self.stop_flag.set()
        self.join()
        if not self.samples:
            return {}
        peak = max(max(s.values(), default=0.0) for s in self.samples)
        return {"first_mb": max(self.samples[0].values(), default=0.0), "last_mb": max(self.samples[-1].values(), default=0.0),
                "max_mb": peak, "samples": len(self.samples), "processes": max(len(s) for s in self.samples)}


async def _open_loop(cfg: dict) -> dict:
    """Requests sent on a fixed schedule, whatever the answers do (no coordinated omission).

    Raw HTTP/1.1 on asyncio streams (the seal bench's client), not httpx, whose CPU per request would
    make the client, not the server, miss the schedule on a 2-core machine. A request goes out on an
    idle keep-alive connection, or a new one when all are busy.
    """
    from _loadgen import _read_response

    host, port = cfg["host"], cfg["port"]
    head = (f"POST /v1/invoices HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {cfg['auth']}\r\n")
    payloads = []
    for o in cfg["outlets"]:
        body = json.dumps({**INVOICE_OBJ, "outlet_id": o}).encode()
        payloads.append((o, (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body))
    rate, duration = cfg["rate"], cfg["duration"]
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    latencies, statuses, created = [], {}, {}

    async def exchange(payload: bytes) -> tuple[tuple, int, bool]:
        if idle:
            conn = idle.pop()
            try:
                conn[1].write(payload)
                return (conn, *(await _read_response(conn[0]))[::2])
            except (asyncio.IncompleteReadError, ConnectionError):
                conn[1].close()  # the server closed it while idle (keep-alive timeout): not an error
        conn = await asyncio.open_connection(host, port)
        conn[1].write(payload)
        return (conn, *(await _read_response(conn[0]))[::2])

    async def one(i: int, scheduled: float) -> None:
        outlet, payload = payloads[i % len(payloads)]
        conn, status, close = await exchange(payload)
        latencies.append(time.perf_counter() - scheduled)
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        if status == 201:
            created[outlet] = created.get(outlet, 0) + 1
        if close:
            conn[1].close()
        else:
            idle.append(conn)

    start, tasks, i = time.perf_counter(), [], 0
    while (scheduled := start + i / rate) < start + duration:
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, scheduled)))
        i += 1
    await asyncio.gather(*tasks)
    seconds = time.perf_counter() - start
    for _, writer in idle:
        writer.close()
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else 0.0  # noqa: E731
    return {"requests": len(latencies), "seconds": seconds, "rps": len(latencies) / seconds, "p50_ms": pick(0.5),
            "p99_ms": pick(0.99), "max_ms": latencies[-1] * 1000 if latencies else 0.0, "statuses": statuses,
            "created": created, "target_rps": rate}


async def _batches(cfg: dict) -> dict:
    import httpx

    headers = {"Authorization": f"Bearer {cfg['auth']}", "Content-Type": "application/json"}
    outlets, size = cfg["outlets"], cfg["size"]
    created: dict[str, int] = {}
    statuses: dict[str, int] = {}
    latencies, sealed = [], 0
    deadline = time.perf_counter() + cfg["duration"]
    async with httpx.AsyncClient(base_url=cfg["base"], headers=headers, timeout=300) as client:
        async def worker() -> None:
            nonlocal sealed
            while time.perf_counter() < deadline:
                items = [{"idempotency_key": uuid.uuid4().hex, "invoice": {**INVOICE_OBJ, "outlet_id": outlets[i % len(outlets)]}}
                         for i in range(size)]
                body = json.dumps({"items": items})
                t0 = time.perf_counter()
                r = await client.post("/v1/invoices/batch", content=body)
                latencies.append(time.perf_counter() - t0)
                statuses[str(r.status_code)] = statuses.get(str(r.status_code), 0) + 1
                if r.status_code == 200:
                    for item in r.json()["data"]:
                        if item["status"] == 201:
                            sealed += 1
                            o = item["invoice"]["outlet_id"]
                            created[o] = created.get(o, 0) + 1
        start = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(cfg["clients"])])
        seconds = time.perf_counter() - start
    latencies.sort()
    return {"batches": len(latencies), "invoices": sealed, "seconds": seconds, "invoices_per_s": sealed / seconds,
            "p50_ms": latencies[len(latencies) // 2] * 1000 if latencies else 0.0,
            "max_ms": latencies[-1] * 1000 if latencies else 0.0, "statuses": statuses, "created": created}


CLIENTS = {"open-loop": _open_loop, "batches": _batches}


def spawn(kind: str, cfg: dict) -> subprocess.Popen:
    """Start a client in a process of its own; `collect` waits for its result."""
    with tempfile.TemporaryFile("w+") as config:  # the child keeps its own descriptor of it
        config.write(json.dumps(cfg))
        config.seek(0)
        return subprocess.Popen([sys.executable, __file__, kind], stdin=config, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)


def collect(proc: subprocess.Popen, kind: str = "client") -> dict:
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} client failed: {err[-2000:]}")
    return json.loads(out)


def run_client(kind: str, cfg: dict) -> dict:
    return collect(spawn(kind, cfg), kind)


if __name__ == "__main__":
    print(json.dumps(asyncio.run(CLIENTS[sys.argv[1]](json.loads(sys.stdin.read())))))
