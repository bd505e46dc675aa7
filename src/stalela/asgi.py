"""ASGI entry point for uvicorn workers (``stalela.asgi:app``), and their lifeline.

A ``stalela serve --workers N`` worker dies with its master.

uvicorn's master spawns the workers and stops them on SIGTERM; but a master killed with SIGKILL (an
OOM kill, ``kill -9``, a crashed container shim) cannot, and its workers went on serving with PPID 1,
holding the listening socket, so the restart failed with "address already in use". Each worker
therefore asks the kernel for SIGTERM when its parent dies (Linux ``PR_SET_PDEATHSIG``) and watches
its parent id as well (other systems, and a parent that died before the request). SIGTERM is
uvicorn's graceful stop: the socket is closed first, in-flight requests finish; a stop that hangs
past ``ORPHAN_GRACE_SECONDS`` ends the process anyway.
"""
from __future__ import annotations

import gc

# Importing the modules and building the app create about a million objects that live as long as the
# process: collecting while they are being created is wasted start-up time (~10 % of a worker's CPU
# before it serves). The app's lifespan freezes them and turns the collector back on.
gc.disable()

import ctypes  # noqa: E402 (after gc.disable, on purpose)
import multiprocessing
import os
import signal
import sys
import threading
import time

from stalela.observability.logging import get_logger

log = get_logger("stalela.lifeline")
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
ORPHAN_GRACE_SECONDS = 10.0
POLL_SECONDS = 0.5


def die_with_parent() -> None:
    """In a worker spawned by the serve master, arrange to stop when the master goes; elsewhere nothing."""
    parent = multiprocessing.parent_process()
    if parent is None:  # `serve --workers 1` runs the app in the master itself; tests import the app
        return
    signalled = sys.platform.startswith("linux") and _parent_death_signal(signal.SIGTERM)
    # A master that died before prctl ran left no one for the kernel to signal us about.
    signalled = signalled and os.getppid() == parent.pid
    threading.Thread(target=_watch, args=(parent.pid, signalled), name="stalela-lifeline", daemon=True).start()


def _parent_death_signal(sig: int) -> bool:
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def _watch(parent_pid: int, signalled: bool) -> None:
    while os.getppid() == parent_pid:
        time.sleep(POLL_SECONDS)
    log.warning("serve_master_gone", parent_pid=parent_pid, grace_seconds=ORPHAN_GRACE_SECONDS)
    if not signalled:
        os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(ORPHAN_GRACE_SECONDS)
    log.error("orphan_stop_timeout", grace_seconds=ORPHAN_GRACE_SECONDS)
    os._exit(1)


# Before the second of loading below: a worker whose master dies meanwhile must not go on to serve.
die_with_parent()

from stalela.app import create_app  # noqa: E402

app = create_app()
