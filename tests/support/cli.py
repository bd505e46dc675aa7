"""Running the ``stalela`` command line in a subprocess against a data directory of its own."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Callable

from tests.conftest import MASTER_KEY

CLI = [sys.executable, "-m", "stalela.cli.main"]


def cli_in(data_dir: Path, database_url: str | None = None) -> Callable[..., dict]:
    """``cli(*args, code=0, env=None)``: runs a command (on ``database_url``, default the data directory's
    SQLite file), fails the test unless it exits with ``code``; the parsed stdout with ``--json`` (and exit
    0), else ``{"out": stdout + stderr}`` (the result, then the diagnostics: docs/cli.md). ``env``: extra
    variables."""
    base = {"PATH": "/usr/bin:/bin", "STALELA_DATA_DIR": str(data_dir), "STALELA_LOG_LEVEL": "WARNING",
            "STALELA_MASTER_KEY": MASTER_KEY}
    if database_url:
        base["STALELA_DATABASE_URL"] = database_url

    def cli(*args: str, code: int = 0, env: dict[str, str] | None = None) -> dict:
        r = subprocess.run([*CLI, *args], env={**base, **(env or {})}, capture_output=True, text=True, timeout=120)
        assert r.returncode == code, r.stdout + r.stderr
        return json.loads(r.stdout) if "--json" in args and code == 0 else {"out": r.stdout + r.stderr}

    return cli
