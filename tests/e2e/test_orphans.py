"""Killing only the `stalela serve` master (SIGKILL: no chance to stop its workers) must not leave its
uvicorn workers serving with PPID 1 and holding the port: they die with it, and a restart on the
same port succeeds (docs/operations.md, "Crashes and restarts")."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx

from tests.conftest import OPERATOR_TOKEN
from tests.support.server import start_server


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie is dead; it only waits for its new parent (init) to reap it


def test_workers_die_with_a_killed_master_and_a_restart_on_the_same_port_succeeds(_postgres_url, tmp_path):
    env = {"STALELA_DATABASE_URL": _postgres_url, "STALELA_OPERATOR_TOKEN": OPERATOR_TOKEN}
    first = start_server(env, tmp_path / "var", workers=2)
    port = int(first.base_url.rsplit(":", 1)[1])
    workers = children(first.process.pid)
    assert len(workers) >= 2
    os.kill(first.process.pid, signal.SIGKILL)
    first.process.wait()
    deadline = time.monotonic() + 15
    while any(alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    orphans = [w for w in workers if alive(w)]
    for w in orphans:  # do not leave them behind for the next tests
        os.kill(w, signal.SIGKILL)
    assert not orphans, f"workers {orphans} outlived their master"

    second = start_server(env, tmp_path / "var", workers=2, port=port)
    try:
        assert httpx.get(f"{second.base_url}/readyz", timeout=5).status_code == 200
    finally:
        second.stop()
