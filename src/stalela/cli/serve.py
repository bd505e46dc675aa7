"""`stalela serve`: the master process. It migrates, starts the API processes (uvicorn) and the
supervised background processes, and stops them all when uvicorn returns.

The topology (docs/operations.md, "Processes"): ``--workers N`` API processes and ``--background M``
processes running ``stalela worker``. With M >= 1 the API processes do no background work; with
M = 0 they do it in their own event loop unless ``STALELA_INPROCESS_WORKERS=false`` (the shape where
``stalela worker`` processes are started by something else: systemd units, Kubernetes pods).
"""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
from contextlib import ExitStack
from typing import Any

from stalela.config import Settings, get_settings


def api_worker_env(background: int, sealers: int = 0, routed: bool = False) -> dict[str, str]:
    """The variables the API processes get on top of the master's environment (uvicorn's workers, and
    the master itself when it serves with ``--workers 1``); the background processes do not get them."""
    env: dict[str, str] = {}
    if background >= 1:
        # The supervised processes do the background work: none in the API's event loop.
        env["STALELA_INPROCESS_WORKERS"] = "false"
    if routed and sealers >= 1:
        # Seal routing (fiscal/invoices/owners.py) to the sealer processes: the API processes own no tenant.
        env["STALELA_SEAL_OWNER_HERE"] = "false"
    return env


def sealer_processes(settings: Settings, sealers: int) -> int:
    """The sealer processes to start: none without seal routing (nothing would hand them a seal, and a
    sealer refuses to run without the routing directory: each would only crash and be restarted)."""
    return sealers if settings.seal_routing else 0


def seal_peers_dir(settings: Settings, workers: int, sealers: int) -> str | None:
    """A private directory for the seal-routing sockets when seals are routed: to sealer processes, or
    among several API processes. Short (a Unix socket's path is limited to ~100 bytes) and 0700."""
    if not settings.seal_routing or (sealers == 0 and workers == 1):
        return None
    if settings.seal_peers_dir is not None:
        return str(settings.seal_peers_dir)
    return tempfile.mkdtemp(prefix="stalela-seal-")


def background_env(master_pid: int) -> dict[str, str]:
    """The environment of the supervised background processes: the master's (the database, keys,
    ``PROMETHEUS_MULTIPROC_DIR``, the address served), and the master's pid for their lifeline."""
    from stalela.supervisor import MASTER_PID_ENV

    return {**os.environ, MASTER_PID_ENV: str(master_pid)}


def run(host: str | None, port: int | None, workers: int | None, background: int | None, migrate: bool,
        demo: bool | None, sealers: int | None = None) -> None:
    import uvicorn

    from stalela.observability.multiproc import forget_process, prepare_multiprocess_dir

    # Before anything imports prometheus-client: every process of this serve (API and background)
    # sums through this directory.
    prepare_multiprocess_dir(get_settings())
    from stalela import migrations as db_migrate

    settings = get_settings()
    host = host or settings.host
    port = port or settings.port
    workers = workers or settings.workers
    background = settings.background_workers if background is None else background
    sealers = sealer_processes(settings, settings.sealer_processes if sealers is None else sealers)
    peers_dir = seal_peers_dir(settings, workers, sealers)
    made_peers_dir = peers_dir is not None and settings.seal_peers_dir is None  # ours to remove at the end
    if peers_dir is not None:
        os.environ["STALELA_SEAL_PEERS_DIR"] = peers_dir  # every process of this serve: API and sealers
    # Worker processes read settings from the environment: make the CLI's choices theirs too, so
    # that e.g. the QR URLs (derived from host and port) name the address actually served.
    os.environ["STALELA_HOST"], os.environ["STALELA_PORT"] = host, str(port)
    children_env = background_env(os.getpid())
    os.environ.update(api_worker_env(background, sealers, routed=peers_dir is not None))
    get_settings.cache_clear()
    settings = get_settings()
    # Migrations are applied (or found at head) once, here in the master, before any worker starts; the
    # master imports no more than that, since it is on the path of every restart (docs/operations.md).
    if migrate:
        asyncio.run(db_migrate.upgrade(settings.effective_database_url, app_role=settings.database_role))
    if demo if demo is not None else (settings.demo and settings.is_sqlite):
        from stalela.cli import bootstrap

        asyncio.run(bootstrap.ensure_demo(settings, host, port))
    from stalela.observability.runtime import configure_logs

    configure_logs(settings)
    with ExitStack() as supervised:
        if made_peers_dir:  # removed last, once every process that listened there is stopped
            supervised.callback(shutil.rmtree, peers_dir, ignore_errors=True)
        if background or sealers:
            from stalela.supervisor import Supervisor, sealer_command, worker_command

            # With --workers 1 uvicorn serves in this process, restores the SIGTERM handler it found when
            # it is done and raises the signal again: the default action would end the process before the
            # supervised processes are stopped. This one unwinds through their stop instead.
            signal.signal(signal.SIGTERM, _exit_cleanly)
            if sealers:
                # Stopped after uvicorn (the API processes' requests are answered first): each answers the
                # seals it took and refuses the rest, which their API processes then seal themselves.
                supervised.enter_context(Supervisor(sealer_command(), sealers, children_env,
                                                    on_exit=forget_process, name="sealer"))
            if background:
                supervised.enter_context(Supervisor(worker_command(), background, children_env,
                                                    on_exit=forget_process))
        uvicorn.run(
            "stalela.asgi:app",
            host=host,
            port=port,
            workers=workers,
            log_config=None,
            proxy_headers=True,
            access_log=False,
        )


def _exit_cleanly(_signum: int, _frame: Any) -> None:
    raise SystemExit(0)
