"""Running the ``stalela`` command line in a subprocess against a data directory of its own."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Callable

from tests.conftest import MASTER_KEY

CLI = [sys.executable, "-m", "stalela.cli.main"]


def cli_in(data_dir: Path) -> Callable[..., dict]:
    """``cli(*args)``: runs a command, fails the test on a non-zero exit; the parsed stdout with ``--json``,
    else ``{"out": stderr}`` (where the human-readable summary goes)."""
    env = {"PATH": "/usr/bin:/bin", "STALELA_DATA_DIR": str(data_dir), "STALELA_LOG_LEVEL": "WARNING",
           "STALELA_MASTER_KEY": MASTER_KEY}

    def cli(*args: str) -> dict:
        r = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        return json.loads(r.stdout) if "--json" in args else {"out": r.stderr}

    return cli
