"""Migrating the fleet: the control plane first, then every dedicated tenant's database (``stalela migrate``).

Resumable by construction: a database already at head is skipped after one cheap read of its revision,
a failure on one database is reported and the others go on, and running again finishes the rest. Each
database is migrated as the connecting user with the same application role and row-level security as the
control plane (``upgrade``), one at a time: a migration takes locks, and a server of hundreds of tenants
should not take them all at once.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from sqlalchemy.engine import make_url

from stalela.config import Settings
from stalela.controlplane.repository import RegistryRepository
from stalela.db.engine import create_engine, is_sqlite_url
from stalela.db.session import Database
from stalela.migrations import _current_heads, head_revisions, revision_text, upgrade
from stalela.tenancy.context import bind_platform

CONTROL_PLANE = "control-plane"


@dataclass
class Target:
    """One database of the fleet: the control plane (``placement`` None) or a dedicated one."""

    tenants: list[str]
    placement: str | None
    url: str
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    outcome: str = "pending"  # ok (migrated), current (already at head), behind (status only), failed
    error: str | None = None

    @property
    def name(self) -> str:
        """The database's name (or SQLite file), never its password."""
        database = make_url(self.url).database or ""
        return database.rsplit("/", 1)[-1] if is_sqlite_url(self.url) else database

    @property
    def label(self) -> str:
        return ",".join(self.tenants) if self.tenants else CONTROL_PLANE

    @property
    def at_head(self) -> bool:
        return (self.after or self.before) == head_revisions()

    def line(self) -> str:
        """``tenant  database  from -> to  outcome``: the plain progress line (one per database)."""
        before, after = revision_text(self.before) or "-", revision_text(self.after or self.before) or "-"
        detail = f"  {self.error}" if self.error else ""
        return f"{self.label}  {self.name}  {before} -> {after}  {self.outcome}{detail}"

    def as_json(self) -> dict:
        return {"tenants": self.tenants, "database": self.name, "placement": self.placement,
                "from": revision_text(self.before), "to": revision_text(self.after or self.before),
                "expected": revision_text(head_revisions()), "at_head": self.at_head,
                "outcome": self.outcome, "error": self.error}


@dataclass
class Plan:
    targets: list[Target] = field(default_factory=list)

    @property
    def failed(self) -> list[Target]:
        return [t for t in self.targets if t.outcome == "failed"]


async def revision(url: str, *, must_exist: bool = True) -> tuple[str, ...]:
    """The database's current heads (one short connection). A dedicated SQLite file that does not exist is not
    created by asking (the control plane's is, by its first migration)."""
    if is_sqlite_url(url) and must_exist:
        from pathlib import Path

        if not Path(make_url(url).database or "").is_file():
            raise FileNotFoundError(f"no database file {make_url(url).database}")
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_current_heads)
    finally:
        await engine.dispose()


async def plan(db: Database) -> Plan:
    """The control plane and every dedicated database, grouped by database (tenants sharing one are listed
    together), in a stable order."""
    result = Plan([Target([], None, db.url)])
    async with db.transaction(readonly=True) as session:
        await bind_platform(session)
        dedicated = await RegistryRepository(session).dedicated()
    by_placement: dict[str, list[str]] = {}
    for tenant_id, placement in dedicated:
        by_placement.setdefault(placement, []).append(tenant_id)
    for placement in sorted(by_placement, key=lambda p: by_placement[p]):
        result.targets.append(Target(by_placement[placement], placement, db.fleet.url_of(placement)))
    return result


async def read_status(target: Target) -> Target:
    try:
        target.before = await revision(target.url, must_exist=target.placement is not None)
        target.outcome = "current" if target.before == head_revisions() else "behind"
    except Exception as exc:  # unreachable, refused, not a database: reported, the others go on
        target.outcome, target.error = "failed", _short(exc)
    return target


async def migrate_target(target: Target, settings: Settings) -> Target:
    """Bring one database to head; a failure is recorded on the target, never raised."""
    await read_status(target)
    if target.outcome == "failed":
        return target
    if target.outcome == "current":
        target.after = target.before
        return target
    try:
        await upgrade(target.url, app_role=settings.database_role)
        target.after = await revision(target.url)
        target.outcome = "ok"
    except Exception as exc:
        target.outcome, target.error = "failed", _short(exc)
    return target


async def migrate_fleet(settings: Settings, on_target: Callable[[Target], None] | None = None,
                        on_plan: Callable[[Plan], None] | None = None) -> Plan:
    """``stalela migrate``: the control plane (its failure stops here: the registry may not be readable),
    then each dedicated database; ``on_target`` hears of each one as it is done."""
    control = Target([], None, settings.effective_database_url)
    await migrate_target(control, settings)
    if on_target:
        on_target(control)
    if control.outcome == "failed":
        return Plan([control])
    db = Database.from_settings(settings)
    try:
        result = await plan(db)
    finally:
        await db.dispose()
    result.targets[0] = control
    if on_plan:
        on_plan(result)
    for target in result.targets[1:]:
        await migrate_target(target, settings)
        if on_target:
            on_target(target)
    return result


async def fleet_status(settings: Settings) -> Plan:
    """Each database's revision and whether it is at head, migrating nothing."""
    db = Database.from_settings(settings)
    try:
        result = await plan(db)
    finally:
        await db.dispose()
    for target in result.targets:
        await read_status(target)
    return result


def _short(exc: Exception) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"[:300]
