"""Real `stalela worker` processes for the kill -9 tests: their environment, starting them, ending them."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import MASTER_KEY


def worker_env(data_dir: Path, **settings: str) -> dict[str, str]:
    """This process's environment without its STALELA_ settings, plus fast outbox leases and retries (a
    dead worker's claim expires in 2 s) and no periodic loops; ``settings`` are STALELA_ names without
    the prefix."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STALELA_")}
    return env | {
        "STALELA_MASTER_KEY": MASTER_KEY, "STALELA_DATA_DIR": str(data_dir), "STALELA_LOG_LEVEL": "WARNING",
        "STALELA_OUTBOX_LEASE_SECONDS": "2", "STALELA_OUTBOX_POLL_SECONDS": "0.1",
        "STALELA_OUTBOX_BACKOFF_BASE_SECONDS": "0.05", "STALELA_OUTBOX_BACKOFF_CAP_SECONDS": "0.5",
        "STALELA_CHECKPOINT_INTERVAL_SECONDS": "0", "STALELA_Z_SCHEDULER_INTERVAL_SECONDS": "0",
    } | {f"STALELA_{k.upper()}": v for k, v in settings.items()}


def spawn_worker(env: dict[str, str], log: Path, **extra: str) -> subprocess.Popen:
    """`stalela worker` in a session of its own, its output appended to ``log``."""
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "stalela.cli.main", "worker", "--concurrency", "2"],
                                env=env | extra, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def kill_workers(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        if worker.poll() is None:
            os.killpg(worker.pid, 9)
            worker.wait(10)
