"""`stalela serve`'s background processes: started with the API, restarted when they die, stopped with it.

The serve master (uvicorn's, which with ``--workers 1`` is also the API process) starts
``--background M`` processes that each run ``stalela worker`` (``stalela.workers.run_worker``), so
the API processes spend their event loop on requests alone. A thread of the master polls them:

- a process that exits while the master is not stopping is started again after a backoff (1 s,
  doubling up to 30 s; back to 1 s once a process has lived 60 s), and the exit is logged with its
  code, so a crash loop costs one start per 30 s and shows in the logs;
- when uvicorn returns (SIGTERM or SIGINT to the master), ``stop`` sends SIGTERM to every process,
  waits up to ``STOP_SECONDS`` (the worker's own grace for its current batch, and a little), then
  SIGKILLs what is left;
- a master that is killed (SIGKILL, OOM) cannot stop them: each process watches its master itself
  (``die_with``), the same lifeline the uvicorn workers use (``stalela.asgi``). The master's pid
  reaches the process in ``MASTER_PID_ENV``: a subprocess has no multiprocessing parent to ask.

The processes get their own process group, so a Ctrl-C at the terminal reaches the master alone:
it stops them in order, instead of the processes exiting on their own and being restarted while
uvicorn shuts down.

Imports only the standard library and logging: the master stays light (docs/operations.md,
"Crashes and restarts"), and ``stalela.asgi`` takes its lifeline from here before the app loads.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from stalela.observability.logging import get_logger

log = get_logger("stalela.supervisor")
lifeline_log = get_logger("stalela.lifeline")

MASTER_PID_ENV = "STALELA_SUPERVISOR_PID"
BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 30.0
STABLE_SECONDS = 60.0
# stalela.workers.GRACE_SECONDS (30: the current batch's handlers finish) and 5 s to record outcomes,
# release claims and exit. Not imported from there: that module loads every domain, which the master
# never needs (tests/test_supervisor.py keeps the two in step).
STOP_SECONDS = 35.0
POLL_SECONDS = 0.5
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def worker_command() -> list[str]:
    """What a supervised process runs: ``stalela worker``, exactly as an operator would start it."""
    return [sys.executable, "-m", "stalela.cli.main", "worker"]


def sealer_command() -> list[str]:
    """A sealer process (``stalela.sealers``): owns tenants' sealing for the API processes."""
    return [sys.executable, "-m", "stalela.cli.main", "sealer"]


def supervising_master() -> int | None:
    """In a process started by the serve master, that master's pid; elsewhere None."""
    value = os.environ.get(MASTER_PID_ENV, "")
    return int(value) if value.isdigit() else None


@dataclass
class _Slot:
    """One of the M processes: the current one, and when to start the next after an exit."""

    index: int
    backoff: float
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    restart_at: float = 0.0
    restarts: int = 0


class Supervisor:
    """Keeps ``count`` processes of ``command`` running from ``start`` until ``stop``.

    Every process is started (and restarted) by the supervising thread, which lives until they are
    all reaped: on Linux a process's parent-death signal fires when the *thread* that forked it ends.
    ``on_exit`` is called with the pid of each process that ended, whatever the reason.
    """

    def __init__(self, command: Sequence[str], count: int, env: Mapping[str, str], *,
                 on_exit: Callable[[int], None] | None = None, stop_seconds: float = STOP_SECONDS,
                 backoff: tuple[float, float] = (BACKOFF_FIRST_SECONDS, BACKOFF_MAX_SECONDS),
                 stable_seconds: float = STABLE_SECONDS, poll_seconds: float = POLL_SECONDS,
                 name: str = "background") -> None:
        self.command = list(command)
        self.env = dict(env)
        self.on_exit = on_exit
        self.stop_seconds = stop_seconds
        self.backoff_first, self.backoff_max = backoff
        self.stable_seconds = stable_seconds
        self.poll_seconds = poll_seconds
        self.name = name
        self.slots = [_Slot(i, self.backoff_first) for i in range(count)]
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"stalela-supervisor-{name}", daemon=True)

    def __enter__(self) -> "Supervisor":
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """SIGTERM to every process, SIGKILL after ``stop_seconds``; returns once all are reaped."""
        self._stopping.set()
        if self._thread.ident is not None:  # started
            self._thread.join()

    def pids(self) -> list[int]:
        return [s.process.pid for s in self.slots if s.process is not None and s.process.poll() is None]

    def _run(self) -> None:
        try:
            for slot in self.slots:
                self._spawn(slot)
            while not self._stopping.wait(self.poll_seconds):
                self._tend(time.monotonic())
        except Exception:  # a bug here must not leave the processes unsupervised and running
            log.exception("supervisor_failed", name=self.name)
        finally:
            self._stop_all()

    def _tend(self, now: float) -> None:
        for slot in self.slots:
            if slot.process is not None and (code := slot.process.poll()) is not None:
                self._exited(slot, code, now)
            if slot.process is None and now >= slot.restart_at:
                self._spawn(slot)

    def _exited(self, slot: _Slot, code: int, now: float) -> None:
        lived = now - slot.started_at
        if lived >= self.stable_seconds:
            slot.backoff = self.backoff_first
        delay, slot.backoff = slot.backoff, min(slot.backoff * 2, self.backoff_max)
        log.warning("background_process_exited", name=self.name, slot=slot.index, pid=slot.process.pid,
                    exit_code=code, signal=_signal_name(code), lived_seconds=round(lived, 1),
                    restart_in_seconds=delay)
        self._forget(slot.process.pid)
        slot.process, slot.restart_at = None, now + delay

    def _spawn(self, slot: _Slot) -> None:
        try:
            # process_group=0: its own group, so the terminal's Ctrl-C reaches the master alone.
            slot.process = subprocess.Popen(self.command, env=self.env, stdin=subprocess.DEVNULL,
                                            process_group=0)
        except OSError as exc:
            delay, slot.backoff = slot.backoff, min(slot.backoff * 2, self.backoff_max)
            log.error("background_process_start_failed", name=self.name, slot=slot.index, error=str(exc),
                      restart_in_seconds=delay)
            slot.restart_at = time.monotonic() + delay
            return
        slot.started_at = time.monotonic()
        if slot.restarts:
            log.warning("background_process_restarted", name=self.name, slot=slot.index, pid=slot.process.pid,
                        restarts=slot.restarts)
        else:
            log.info("background_process_started", name=self.name, slot=slot.index, pid=slot.process.pid)
        slot.restarts += 1

    def _stop_all(self) -> None:
        running = [s.process for s in self.slots if s.process is not None]
        for process in running:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_seconds
        for process in running:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("background_process_stop_timeout", name=self.name, pid=process.pid,
                          grace_seconds=self.stop_seconds)
                process.kill()
                process.wait()
            self._forget(process.pid)
        for slot in self.slots:
            slot.process = None
        if running:
            log.info("background_processes_stopped", name=self.name, count=len(running))

    def _forget(self, pid: int) -> None:
        if self.on_exit is not None:
            try:
                self.on_exit(pid)
            except Exception:
                log.exception("background_process_cleanup_failed", pid=pid)


def _signal_name(code: int) -> str | None:
    if code >= 0:
        return None
    try:
        return signal.Signals(-code).name
    except ValueError:
        return None


# The lifeline: a process dies with the master that started it.

def die_with(parent_pid: int, *, grace: float) -> None:
    """Stop this process when ``parent_pid`` stops being its parent: SIGTERM (its graceful stop), and
    after ``grace`` seconds an exit whatever it was doing.

    The kernel sends the SIGTERM on Linux (``PR_SET_PDEATHSIG``); a thread also watches the parent id,
    for other systems and for a parent that died before the request was made."""
    signalled = sys.platform.startswith("linux") and _parent_death_signal(signal.SIGTERM)
    # A master that died before prctl ran left no one for the kernel to signal us about.
    signalled = signalled and os.getppid() == parent_pid
    threading.Thread(target=_watch, args=(parent_pid, signalled, grace), name="stalela-lifeline",
                     daemon=True).start()


def _parent_death_signal(sig: int) -> bool:
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def _watch(parent_pid: int, signalled: bool, grace: float) -> None:
    while os.getppid() == parent_pid:
        time.sleep(POLL_SECONDS)
    lifeline_log.warning("serve_master_gone", parent_pid=parent_pid, grace_seconds=grace)
    if not signalled:
        os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(grace)
    lifeline_log.error("orphan_stop_timeout", grace_seconds=grace)
    os._exit(1)
