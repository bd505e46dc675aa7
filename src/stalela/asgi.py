"""ASGI entry point for uvicorn workers (``stalela.asgi:app``), and their lifeline.

A ``stalela serve --workers N`` worker dies with its master.

uvicorn's master spawns the workers and stops them on SIGTERM; but a master killed with SIGKILL (an
OOM kill, ``kill -9``, a crashed container shim) cannot, and its workers went on serving with PPID 1,
holding the listening socket, so the restart failed with "address already in use". Each worker
therefore asks the kernel for SIGTERM when its parent dies (Linux ``PR_SET_PDEATHSIG``) and watches
its parent id as well (other systems, and a parent that died before the request). SIGTERM is
uvicorn's graceful stop: the socket is closed first, in-flight requests finish; a stop that hangs
past ``ORPHAN_GRACE_SECONDS`` ends the process anyway (``stalela.supervisor.die_with``, which the
background processes of ``stalela serve --background M`` use too).
"""
from __future__ import annotations

import gc

# Importing the modules and building the app create about a million objects that live as long as the
# process: collecting while they are being created is wasted start-up time (~10 % of a worker's CPU
# before it serves). The app's lifespan freezes them and turns the collector back on.
gc.disable()

import multiprocessing  # noqa: E402 (after gc.disable, on purpose)

from stalela.supervisor import die_with  # noqa: E402

ORPHAN_GRACE_SECONDS = 10.0


def die_with_parent() -> None:
    """In a worker spawned by the serve master, arrange to stop when the master goes; elsewhere nothing."""
    parent = multiprocessing.parent_process()
    if parent is None:  # `serve --workers 1` runs the app in the master itself; tests import the app
        return
    die_with(parent.pid, grace=ORPHAN_GRACE_SECONDS)


# Before the second of loading below: a worker whose master dies meanwhile must not go on to serve.
die_with_parent()

from stalela.app import create_app  # noqa: E402

app = create_app()
