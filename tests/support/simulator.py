"""The DGI e-MCF simulator as a real server process, for tests that sync invoices."""
from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass

import httpx

from tests.support.server import free_port


@dataclass
class RunningSimulator:
    url: str
    process: subprocess.Popen

    def faults(self, **spec) -> None:
        r = httpx.put(f"{self.url}/_sim/faults", json=spec, timeout=10)
        assert r.status_code == 200, r.text

    def reset(self) -> None:
        assert httpx.post(f"{self.url}/_sim/reset", timeout=10).status_code == 200

    def records(self) -> dict:
        return httpx.get(f"{self.url}/_sim/records", timeout=30).json()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_simulator(devices: dict[str, str], faults: str | None = None) -> RunningSimulator:
    port = free_port()
    args = [sys.executable, "-m", "stalela.cli.main", "simulate", "dgi", "--port", str(port)]
    for nim, token in devices.items():
        args += ["--device", f"{nim}:{token}"]
    if faults:
        args += ["--faults", faults]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sim = RunningSimulator(f"http://127.0.0.1:{port}", proc)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("simulator exited early")
        try:
            if httpx.get(f"{sim.url}/_sim/faults", timeout=1).status_code == 200:
                return sim
        except httpx.HTTPError:
            time.sleep(0.1)
    sim.stop()
    raise RuntimeError("simulator did not start")
