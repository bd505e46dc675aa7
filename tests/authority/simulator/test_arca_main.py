"""``stalela simulate arca`` as a separate process: what it prints, that it serves, that it stops."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.authority.simulator.arca_support import make_identity

pytestmark = pytest.mark.e2e

CLI = [sys.executable, "-m", "stalela.cli.main", "simulate", "arca"]
ENTRY = [sys.executable, "-c",
         "import sys; from stalela.authority.simulator.arca import main; sys.exit(main(sys.argv[1:]))"]


def start(command: list[str]) -> tuple[subprocess.Popen, list[str]]:
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
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


def test_cli_prints_the_urls_serves_and_stops(tmp_path):
    ca = make_identity(None, ca=True)
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    proc, lines = start(CLI + ["--port", "0", "--faults", "http500=1", "--seed", "3",
                               "--ca", str(tmp_path / "ca.pem")])
    try:
        url = lines[-1].removeprefix("listening ")
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
        assert lines[:2] == [f"wsaa {url}/ws/services/LoginCms", f"wsfe {url}/wsfev1/service.asmx"]
        faults = httpx.get(f"{url}/_sim/faults").json()
        assert (faults["http500"], faults["seed"]) == (1, 3)
        r = httpx.post(f"{url}/wsfev1/service.asmx", content=b"<x/>")
        assert r.status_code == 500 and b"soap:Server" in r.content
    finally:
        assert stop(proc) == 0


@pytest.mark.parametrize("args", [["--faults", "bogus=1"], ["--port", "x"],
                                  ["--ca", "/nonexistent.pem"], ["--faults", "http500=3"]])
def test_bad_arguments_exit_2(args):
    result = subprocess.run(ENTRY + args, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stdout == "" and result.stderr
