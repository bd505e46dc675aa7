"""Finding PostgreSQL for the tests (DESIGN.md §8) and making throwaway databases on it.

Order: ``STALELA_TEST_DATABASE_URL``; else 127.0.0.1:5432 as postgres if it answers; else a
throwaway cluster from the local ``initdb``/``pg_ctl``; else PostgreSQL tests skip, saying why.
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass

import psycopg
from sqlalchemy.engine import make_url


@dataclass
class PgServer:
    admin_url: str  # plain postgresql:// URL of a superuser on a maintenance database
    stop: callable | None = None
    reason: str = ""
    # A cluster of the test run's own can be taken down and brought back (the chaos test); the shared one never.
    restart: callable | None = None


def _answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except Exception:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def throwaway_cluster() -> PgServer | None:
    """A new cluster on a free loopback port, or None without ``initdb``. Its ``restart(down_seconds)`` stops it
    at once (``-m immediate``: a crash, recovered from the WAL at start) and starts it again on the same port."""
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    initdb = shutil.which("initdb") or next((f"{b}/initdb" for b in bins if os.path.exists(f"{b}/initdb")), None)
    if not initdb:
        return None
    pg_ctl = os.path.join(os.path.dirname(initdb), "pg_ctl")
    root = tempfile.mkdtemp(prefix="stalela-pg-")
    port = _free_port()
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        os.chmod(root, 0o777)
        run_as = ["runuser", "-u", "postgres", "--"]
    data = os.path.join(root, "data")
    subprocess.run([*run_as, initdb, "-D", data, "-U", "postgres", "--auth=trust"], check=True, capture_output=True)

    def start() -> None:
        subprocess.run(
            [*run_as, pg_ctl, "-D", data, "-w", "-l", os.path.join(root, "server.log"),
             "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start"],
            check=True, capture_output=True,
        )

    def kill() -> None:
        subprocess.run([*run_as, pg_ctl, "-D", data, "-m", "immediate", "stop"], capture_output=True)

    def restart(down_seconds: float = 0) -> None:
        kill()
        time.sleep(down_seconds)
        start()

    def stop() -> None:
        kill()
        shutil.rmtree(root, ignore_errors=True)

    start()
    return PgServer(f"postgresql://postgres@127.0.0.1:{port}/postgres", stop, restart=restart)


def find_postgres() -> PgServer:
    explicit = os.environ.get("STALELA_TEST_DATABASE_URL")
    if explicit:
        url = explicit.replace("+asyncpg", "")
        if _answers(url):
            return PgServer(url)
        return PgServer("", reason=f"STALELA_TEST_DATABASE_URL={explicit} does not answer")
    local = "postgresql://postgres@127.0.0.1:5432/postgres"
    if _answers(local):
        return PgServer(local)
    try:
        server = throwaway_cluster()
    except Exception as exc:  # a broken local install: skip with the reason rather than fail everything
        return PgServer("", reason=f"no PostgreSQL at 127.0.0.1:5432 and initdb failed: {exc}")
    if server is None:
        return PgServer("", reason="no PostgreSQL: set STALELA_TEST_DATABASE_URL, run one on 127.0.0.1:5432, or install initdb")
    return server


def create_database(admin_url: str) -> str:
    name = f"stalela_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, url: str) -> None:
    name = make_url(url).database
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
