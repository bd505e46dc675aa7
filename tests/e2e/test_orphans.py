"""Killing only the `stalela serve` master (SIGKILL: no chance to stop its workers) must not leave its
uvicorn workers serving with PPID 1 and holding the port: they die with it, and a restart on the
same port succeeds (docs/operations.md, "Crashes and restarts")."""
from __future__ import annotations

import httpx

from tests.conftest import OPERATOR_TOKEN
from tests.support.server import child_pids, start_server


def test_workers_die_with_a_killed_master_and_a_restart_on_the_same_port_succeeds(_postgres_url, tmp_path):
    env = {"STALELA_DATABASE_URL": _postgres_url, "STALELA_OPERATOR_TOKEN": OPERATOR_TOKEN}
    first = start_server(env, tmp_path / "var", workers=2)
    port = int(first.base_url.rsplit(":", 1)[1])
    assert len(child_pids(first.process.pid)) >= 2
    survivors = first.kill()
    assert not survivors, f"workers {survivors} outlived their master"

    second = start_server(env, tmp_path / "var", workers=2, port=port)
    try:
        assert httpx.get(f"{second.base_url}/readyz", timeout=5).status_code == 200
    finally:
        second.stop()
