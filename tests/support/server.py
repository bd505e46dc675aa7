"""A real ``stalela serve`` on a loopback port, in its own process(es), for end-to-end tests."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import httpx


def child_pids(pid: int) -> list[int]:
    """The processes ``pid`` started (uvicorn's workers under a ``stalela serve`` master)."""
    found = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:  # the process itself is gone
        return found
    for task in tasks:
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except FileNotFoundError:  # a thread that ended between the listing and the read
            continue
    return found


def _supervised(pid: int, command: bytes) -> list[int]:
    found = []
    for child in child_pids(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except FileNotFoundError:
            continue
        if b"stalela.cli.main" in cmdline and command in cmdline and is_alive(child):
            found.append(child)
    return found


def background_pids(pid: int) -> list[int]:
    """The live background processes (``stalela worker``) a ``stalela serve`` master supervises."""
    return _supervised(pid, b"worker")


def sealer_pids(pid: int) -> list[int]:
    """The live sealer processes (``stalela sealer``) a ``stalela serve`` master supervises."""
    return _supervised(pid, b"sealer")


def api_worker_pids(pid: int) -> list[int]:
    """uvicorn's worker processes under a ``stalela serve`` master: its live children but the supervised
    ones and multiprocessing's resource tracker (none with ``--workers 1``: the master serves)."""
    supervised = set(background_pids(pid)) | set(sealer_pids(pid))
    found = []
    for child in child_pids(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if child not in supervised and b"resource_tracker" not in cmdline and is_alive(child):
            found.append(child)
    return found


def is_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie is dead; it only waits for its new parent (init) to reap it


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveServer:
    base_url: str
    process: subprocess.Popen
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=45)  # the background processes get 35 s (supervisor.STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self, wait: float = 15) -> list[int]:
        """SIGKILL the master alone, as a crash would; wait for its workers to follow. Returns those that
        did not (after killing them too, so no test leaves them behind)."""
        workers = child_pids(self.process.pid)
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        deadline = time.monotonic() + wait
        while any(is_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        survivors = [w for w in workers if is_alive(w)]
        for w in survivors:
            os.kill(w, signal.SIGKILL)
        return survivors

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]


def start_server(env_overrides: dict[str, str], data_dir: Path, *, workers: int = 1, timeout: float = 60,
                 port: int | None = None, background: int | None = None, sealers: int | None = None) -> LiveServer:
    """``stalela serve``; ``background`` and ``sealers`` are its ``--background`` and ``--sealers``
    (default: the settings', 1 and 0)."""
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STALELA_")}
    env.update({"STALELA_DATA_DIR": str(data_dir), "STALELA_LOG_LEVEL": "WARNING", "STALELA_DEMO": "false",
                "STALELA_MASTER_KEY": "6d" * 32,  # the same as tests.conftest.MASTER_KEY
                # Load tests seal thousands of invoices with one key; the tests of rate limits set their own.
                "STALELA_RATE_LIMIT_PER_SECOND": "1000000", "STALELA_RATE_LIMIT_BURST": "1000000"})
    env.update(env_overrides)
    log_path = data_dir / f"server-{port}.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "wb")
    args = [sys.executable, "-m", "stalela.cli.main", "serve", "--port", str(port), "--workers", str(workers)]
    if background is not None:
        args += ["--background", str(background)]
    if sealers is not None:
        args += ["--sealers", str(sealers)]
    proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = LiveServer(f"http://127.0.0.1:{port}", proc, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early:\n{server.log()}")
        try:
            if httpx.get(f"{server.base_url}/readyz", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"server did not become ready:\n{server.log()}")


@contextmanager
def asgi_in_thread(app: Any) -> Iterator[str]:
    """An ASGI app (a stand-in for a remote service) served by uvicorn on a loopback port in a thread of this
    process; yields its base URL, stops it on exit."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(5)
