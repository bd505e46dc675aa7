"""Where a dedicated tenant's database is created, and creating it.

The operator lists the servers (``STALELA_DEDICATED_DATABASE_URL_TEMPLATE``, comma-separated templates with
``{tenant}`` for the database name); a new database goes to the server with the fewest dedicated tenants.
Without a template, the control plane's own server (PostgreSQL) or a SQLite file per tenant in
``data_dir/tenants`` (embedded mode).
"""
from __future__ import annotations

import re
from collections import Counter

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from stalela.config import Settings, normalize_database_url
from stalela.controlplane import repository
from stalela.db.engine import is_sqlite_url
from stalela.db.fleet import strip_password
from stalela.errors import ValidationFailed

_UNSAFE = re.compile(r"[^a-z0-9_]")
_SLOT = "STALELATENANTSLOT"


def database_name(tenant_id: str) -> str:
    """A PostgreSQL identifier (at most 63 bytes, no quoting needed) that names the tenant."""
    return ("stalela_" + _UNSAFE.sub("_", tenant_id.lower()))[:63]


def templates(settings: Settings) -> list[str]:
    configured = [t.strip() for t in (settings.dedicated_database_url_template or "").split(",") if t.strip()]
    if not configured:
        control = settings.effective_database_url
        if is_sqlite_url(control):
            configured = [f"sqlite:///{(settings.data_dir / 'tenants').resolve()}/{{tenant}}.db"]
        else:
            configured = [make_url(control).set(database=_SLOT).render_as_string(hide_password=False)]
    # Normalised around a placeholder: URL rendering would percent-encode the braces.
    return [normalize_database_url(t.replace("{tenant}", _SLOT)).replace(_SLOT, "{tenant}") for t in configured]


def server_of(placement: str) -> str:
    """The server part of a placement (what two tenants on one server share)."""
    url = make_url(placement)
    if url.get_backend_name().startswith("sqlite"):
        return "sqlite:" + str(url.database).rsplit("/", 1)[0]
    return f"{url.host}:{url.port or 5432}"


def choose(settings: Settings, tenant_id: str, used: list[str | None], target: str | None = None) -> str:
    """The placement (URL without password) of a new dedicated database for ``tenant_id``: on ``target``
    (a server, ``host:port``, among the configured ones) if given, else on the least used server."""
    candidates = [strip_password(t.replace("{tenant}", database_name(tenant_id))) for t in templates(settings)]
    if target is not None:
        chosen = [c for c in candidates if server_of(c) == target]
        if not chosen:
            servers = ", ".join(sorted({server_of(c) for c in candidates}))
            raise ValidationFailed(f"unknown server {target!r} (configured: {servers})", code="unknown_server",
                                   field="target")
        return chosen[0]
    load = Counter(server_of(p) for p in used if p)
    return min(candidates, key=lambda c: load[server_of(c)])


async def create_database(url: str) -> bool:
    """Create the database ``url`` names if it does not exist (idempotent: provisioning resumes here).
    Returns whether it was created. SQLite: the file appears on first connection."""
    if is_sqlite_url(url):
        return False
    parsed = make_url(normalize_database_url(url))
    name = parsed.database
    if not name or _UNSAFE.sub("", name) != name:
        raise ValueError(f"refusing to create database {name!r}")
    # CREATE DATABASE runs outside a transaction, connected to the server's maintenance database.
    engine = create_async_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            if await repository.database_exists(conn, name):
                return False
            await repository.create_database(conn, name)
            return True
    finally:
        await engine.dispose()


async def drop_database(url: str) -> None:
    """Purge: the database of a tenant that moved away (operator's decision, after the move's receipt)."""
    if is_sqlite_url(url):
        from pathlib import Path

        path = make_url(url).database
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    parsed = make_url(normalize_database_url(url))
    name = parsed.database
    if not name or _UNSAFE.sub("", name) != name or not name.startswith("stalela_"):
        raise ValueError(f"refusing to drop database {name!r}")
    engine = create_async_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await repository.drop_database(conn, name)
    finally:
        await engine.dispose()
