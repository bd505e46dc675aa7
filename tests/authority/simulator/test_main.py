"""``main()`` as a separate process: what it prints, that it serves, that it stops cleanly."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.authority.simulator.support import invoice

pytestmark = pytest.mark.e2e

ENTRY = "import sys; from stalela.authority.simulator import main; sys.exit(main(sys.argv[1:]))"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(*args: str) -> tuple[subprocess.Popen, list[str]]:
    proc = subprocess.Popen([sys.executable, "-c", ENTRY, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            proc.kill()
            raise AssertionError(f"simulator exited: {proc.stderr.read()}")
        lines.append(line.rstrip("\n"))
        if line.startswith("listening "):
            return proc, lines
    proc.kill()
    raise AssertionError(f"no listening line in {lines}")


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_default_device_and_url_are_printed():
    port = free_port()
    proc, lines = start("--port", str(port))
    try:
        assert len(lines) == 2
        word, nim, token = lines[0].split(" ")
        assert (word, nim) == ("device", "SIM00001") and len(token) >= 16
        assert lines[1] == f"listening http://127.0.0.1:{port}"
        r = httpx.get(f"http://127.0.0.1:{port}/api/info/status",
                      headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and r.json()["nim"] == "SIM00001"
        assert r.json()["nif"] is None
    finally:
        assert stop(proc) == 0


def test_devices_nifs_faults_and_state_file(tmp_path):
    state = tmp_path / "state.json"
    proc, lines = start("--port", "0", "--device", "D1:tok-1", "--device", "D2:tok-2",
                        "--nif-for", "D1:A111", "--faults", "mismatch_rate=1,seed=5",
                        "--state-file", str(state))
    try:
        assert lines[:2] == ["device D1 tok-1", "device D2 tok-2"]
        url = lines[2].removeprefix("listening ")
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
        assert httpx.get(f"{url}/_sim/faults").json()["mismatch_rate"] == 1
        with httpx.Client(base_url=url, headers={"Authorization": "Bearer tok-1"}) as c:
            assert c.get("/api/info/status").json()["nif"] == "A111"
            created = c.post("/api/invoice", json=invoice(nif="A111")).json()
            assert created["total"] == "117.00"  # 116.00, skewed by the mismatch fault
    finally:
        assert stop(proc) == 0
    assert created["uid"] in state.read_text()


@pytest.mark.parametrize("args", [["--device", "no-colon"], ["--faults", "bogus=1"],
                                  ["--nif-for", "UNKNOWN:X"], ["--port", "x"]])
def test_bad_arguments_exit_2(args):
    result = subprocess.run([sys.executable, "-c", ENTRY, *args], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 2
    assert result.stdout == "" and result.stderr
