"""The supervisor on real child processes: restarts with a backoff that doubles and resets, a stop that
SIGKILLs what ignores SIGTERM, the lifeline of a process whose master is killed, and the environment
`stalela serve` gives its API and background processes. (The whole serve topology: tests/e2e/test_topology.py.)"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from stalela import supervisor, workers
from stalela.cli.serve import api_worker_env, background_env
from stalela.config import Settings
from tests.support.server import is_alive


def _child(tmp_path: Path, body: str) -> list[str]:
    """A child that appends its start time to starts.txt, then runs ``body``."""
    script = tmp_path / f"child-{len(list(tmp_path.glob('child-*.py')))}.py"
    script.write_text(textwrap.dedent(f"""
        import os, signal, sys, time
        with open({str(tmp_path / 'starts.txt')!r}, "a") as f:
            f.write(f"{{time.monotonic()}} {{os.getpid()}}\\n")
    """) + textwrap.dedent(body))
    return [sys.executable, str(script)]


def _starts(tmp_path: Path) -> list[tuple[float, int]]:
    path = tmp_path / "starts.txt"
    if not path.exists():
        return []
    return [(float(t), int(p)) for t, p in (line.split() for line in path.read_text().splitlines())]


def _wait(predicate, what: str, timeout: float = 30.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_stop_outlasts_the_workers_own_grace():
    # The master does not import stalela.workers (every domain) for this one number.
    assert supervisor.STOP_SECONDS >= workers.GRACE_SECONDS + 3


def test_a_crashing_child_is_restarted_with_a_doubling_capped_backoff(tmp_path):
    exited: list[int] = []
    sup = supervisor.Supervisor(_child(tmp_path, "sys.exit(3)"), 1, os.environ, on_exit=exited.append,
                                backoff=(0.3, 1.2), poll_seconds=0.02, stable_seconds=60)
    with sup:
        _wait(lambda: len(_starts(tmp_path)) >= 5, "five starts")
    starts = _starts(tmp_path)
    gaps = [b[0] - a[0] for a, b in zip(starts, starts[1:])][:4]
    # 0.3, 0.6, 1.2, then the cap (each plus the start of an interpreter, which the gap also holds)
    for gap, delay in zip(gaps, [0.3, 0.6, 1.2, 1.2]):
        assert delay <= gap < delay + 1.0, gaps
    assert exited[:4] == [pid for _, pid in starts[:4]]  # each exit reported, with its pid


def test_the_backoff_resets_once_a_child_has_lived_long_enough(tmp_path):
    sup = supervisor.Supervisor(_child(tmp_path, "time.sleep(0.5); sys.exit(1)"), 1, os.environ,
                                backoff=(0.3, 30), poll_seconds=0.02, stable_seconds=0.4)
    with sup:
        _wait(lambda: len(_starts(tmp_path)) >= 4, "four starts")
    starts = _starts(tmp_path)
    gaps = [b[0] - a[0] for a, b in zip(starts, starts[1:])][:3]
    # It lived 0.5 s > 0.4 s each time: always the first delay, never 0.6 then 1.2.
    assert all(0.8 <= gap < 1.5 for gap in gaps), gaps


def test_stop_terminates_then_kills_what_ignores_sigterm(tmp_path):
    stubborn = _child(tmp_path, f"""
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        open({str(tmp_path)!r} + f"/ignoring-{{os.getpid()}}", "w").close()
        while True:
            time.sleep(1)
    """)
    polite = _child(tmp_path, "time.sleep(60)")
    exited: list[int] = []
    sups = [supervisor.Supervisor(cmd, 2, os.environ, on_exit=exited.append, stop_seconds=1.0, poll_seconds=0.02)
            for cmd in (stubborn, polite)]
    for sup in sups:
        sup.start()
    _wait(lambda: all(len(s.pids()) == 2 for s in sups), "four children")
    pids = [p for s in sups for p in s.pids()]
    _wait(lambda: len(list(tmp_path.glob("ignoring-*"))) == 2, "the stubborn ones to ignore SIGTERM")
    began = time.monotonic()
    for sup in sups:
        sup.stop()
    took = time.monotonic() - began
    assert not [p for p in pids if is_alive(p)]
    assert sorted(exited) == sorted(pids)
    assert 1.0 <= took < 4.0, took  # the polite ones at once, the stubborn ones at the deadline
    assert not sups[0].pids() and not sups[1].pids()


def test_children_have_their_own_process_group(tmp_path):
    with supervisor.Supervisor(_child(tmp_path, "time.sleep(60)"), 1, os.environ, poll_seconds=0.02) as sup:
        _wait(lambda: sup.pids(), "a child")
        (pid,) = sup.pids()
        assert os.getpgid(pid) == pid != os.getpgid(0)  # a Ctrl-C at the terminal reaches the master alone


def test_a_child_dies_with_a_killed_master(tmp_path):
    """A master holding a supervised child that uses the lifeline; SIGKILL the master: the child stops."""
    child = tmp_path / "child.py"
    child.write_text(textwrap.dedent(f"""
        import os, signal, time
        from stalela import supervisor
        supervisor.die_with(supervisor.supervising_master(), grace=5)
        signal.signal(signal.SIGTERM, lambda *_: (open({str(tmp_path / 'stopped')!r}, "w").close(), os._exit(0)))
        open({str(tmp_path / 'ready')!r}, "w").close()
        while True:
            time.sleep(1)
    """))
    master = tmp_path / "master.py"
    master.write_text(textwrap.dedent(f"""
        import os, sys, time
        from stalela import supervisor
        env = {{**os.environ, supervisor.MASTER_PID_ENV: str(os.getpid())}}
        sup = supervisor.Supervisor([sys.executable, {str(child)!r}], 1, env)
        sup.start()
        while not sup.pids():
            time.sleep(0.05)
        with open({str(tmp_path / 'child.pid')!r}, "w") as f:
            f.write(str(sup.pids()[0]))
        time.sleep(120)
    """))
    proc = subprocess.Popen([sys.executable, str(master)], stdout=subprocess.DEVNULL)
    try:
        _wait(lambda: (tmp_path / "ready").exists() and (tmp_path / "child.pid").exists()
              and (tmp_path / "child.pid").read_text(), "the child's lifeline")
        pid = int((tmp_path / "child.pid").read_text())
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        _wait(lambda: not is_alive(pid), "the orphan to stop", timeout=10)
        assert (tmp_path / "stopped").exists()  # by its graceful SIGTERM path, not the orphan timeout
    finally:
        proc.kill()


def test_serve_turns_in_process_work_off_in_the_api_processes_only_when_it_supervises(tmp_path):
    settings = Settings(data_dir=tmp_path)
    assert settings.background_workers == 1
    assert api_worker_env(1) == {"STALELA_INPROCESS_WORKERS": "false"}
    assert api_worker_env(0) == {}  # the old shape: STALELA_INPROCESS_WORKERS decides
    env = background_env(4242)
    assert env[supervisor.MASTER_PID_ENV] == "4242" and env["PATH"] == os.environ["PATH"]
    assert "STALELA_INPROCESS_WORKERS" not in env or env["STALELA_INPROCESS_WORKERS"] == os.environ.get(
        "STALELA_INPROCESS_WORKERS")


def test_supervising_master_reads_only_a_pid(monkeypatch):
    monkeypatch.delenv(supervisor.MASTER_PID_ENV, raising=False)
    assert supervisor.supervising_master() is None
    monkeypatch.setenv(supervisor.MASTER_PID_ENV, "123")
    assert supervisor.supervising_master() == 123
    monkeypatch.setenv(supervisor.MASTER_PID_ENV, "junk")
    assert supervisor.supervising_master() is None


def test_without_seal_routing_serve_starts_no_sealer_process(tmp_path):
    """STALELA_SEAL_ROUTING=false gives the processes no routing directory, and a sealer process without
    one refuses to run (stalela.sealers): starting S of them was a restart loop with nothing to gain."""
    import asyncio

    import pytest

    from stalela.cli import serve
    from stalela.sealers import run_sealer

    off = Settings(data_dir=tmp_path, seal_routing=False)
    assert serve.seal_peers_dir(off, 2, 1) is None
    with pytest.raises(RuntimeError):
        asyncio.run(run_sealer(off))  # what each of them would do, restarted every 1..30 s
    assert serve.sealer_processes(off, 2) == 0
    assert serve.sealer_processes(Settings(data_dir=tmp_path), 2) == 2
