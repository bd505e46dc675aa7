"""The prometheus-client multiprocess directory. Imports nothing from prometheus-client on purpose:
the mode is chosen when that library is first imported, so this must run before it."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

ENV = "PROMETHEUS_MULTIPROC_DIR"


def metrics_dir(settings: Any) -> Path:
    return Path(settings.metrics_dir or Path(settings.data_dir) / "metrics").resolve()


def prepare_multiprocess_dir(settings: Any) -> Path:
    """`stalela serve`: empty the directory of a previous run and point this process and the workers
    it spawns at it. Each `stalela serve` needs its own directory (the default is per data dir)."""
    directory = metrics_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink(missing_ok=True)
    os.environ[ENV] = str(directory)
    return directory


def forget_process(pid: int) -> None:
    """A process of this `stalela serve` ended (a supervised background process, however it ended): its
    live gauges leave the directory. Its counters and histograms stay and are still summed, so totals
    never go backwards when a process is replaced."""
    directory = os.environ.get(ENV)
    if directory:
        from prometheus_client import multiprocess  # creates no metric: the master writes no file

        multiprocess.mark_process_dead(pid, directory)


def leave_multiprocess_mode() -> bool:
    """`stalela worker` keeps its metrics in memory and serves them itself: a directory shared with
    `stalela serve` would be emptied by it and mix both. Returns False if it was too late to leave."""
    inherited = os.environ.pop(ENV, None) or os.environ.pop(ENV.lower(), None)
    return not (inherited and "prometheus_client" in sys.modules)
