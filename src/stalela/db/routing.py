"""Two planes in one session: control-plane tables in the control plane's database, the rest in the
tenant's own.

A tenant of the dedicated tier keeps its data (outlets, invoices, ledger, outbox, ...) in a database of
its own, while the control plane (the tenant registry, API keys and users, which must be found before the
tenant is known, operators, platform billing and metering) stays in the control plane's database for
every tenant. A ``RoutedSession`` sends each statement to the right one, so a service written for one
database works unchanged: SQLAlchemy's own answer to vertical partitioning (``Session.get_bind``),
rather than two sessions threaded through every call.

The session's data plane is ``info[DATA_BIND]``: absent for the shared tier (every statement goes to the
control plane's engine, as before the tiers existed, at no cost), set by ``tenancy.context.bind_tenant``
or by a dedicated database's own sessions. A session holds a connection per database it touched and
commits each at its end; writes that must be atomic stay within one plane.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.orm import Session
from sqlalchemy.sql import util as sql_util
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.elements import TextClause

DATA_BIND = "stalela.data_bind"

# Every table the control plane keeps for all tenants. Anything else is data-plane: it lives where the
# tenant's placement says. tests/db/test_planes.py fails when a table is in neither list.
CONTROL_TABLES = frozenset({
    "alembic_version",
    "tenants", "tenant_provisioning", "tenant_moves",
    "api_keys", "users", "invitations", "refresh_tokens", "auth_keys",
    # Public keys are served to anyone (GET /v1/keys/{id}, the JWKS) before any tenant is known.
    "signing_keys",
    "operator_users", "operator_sessions", "platform_audit_log",
    "billing_accounts", "billing_bills", "billing_exchange_rates", "billing_issuer", "billing_plans",
    "billing_rate_cards",
    "usage_anomalies", "usage_cursors", "usage_daily", "usage_events", "usage_voids",
    # A marketplace's webhook names only the connection: its tenant is found here, before any tenant is known.
    "connections",
})


class PlaneError(RuntimeError):
    """A statement reads control-plane and data-plane tables together: in the dedicated tier they are in
    two databases, so no single statement can see both (a programming error, caught by the tier tests)."""


def _tables(mapper: Any, clause: Any) -> list[str]:
    if clause is not None:
        if isinstance(clause, TextClause):
            return []
        # The whole statement, a DML's WHERE and subqueries included: a table hidden there decides too.
        return [t.name for t in sql_util.find_tables(clause, include_aliases=True, include_joins=True,
                                                     include_crud=isinstance(clause, UpdateBase))
                if isinstance(t, Table)]
    if mapper is not None:
        return [mapper.local_table.name]
    return []


# A statement's plane by its SQLAlchemy cache key: two statements with the same key compile to the same
# SQL, so they read the same tables. The key is memoized on the statement and computed anyway for the
# compiled-statement cache, while walking the statement for its tables cost about a millisecond of a dedicated
# tenant's seal (tens of statements). Bounded like SQLAlchemy's own cache: emptied when full.
_PLANES: dict[Any, bool] = {}
_PLANES_MAX = 4096


def is_control(mapper: Any = None, clause: Any = None) -> bool:
    """Does this statement belong to the control plane? Raw SQL (``text()``) is data-plane unless its
    caller names the bind; the tenants' copy row in a dedicated database keeps its foreign keys whole,
    so a data-plane statement may join ``tenants``."""
    if clause is None or isinstance(clause, TextClause):
        return _classify(mapper, clause)
    key = clause._generate_cache_key()
    if key is None:  # a statement SQLAlchemy cannot cache (say, a custom construct): walked every time
        return _classify(mapper, clause)
    known = _PLANES.get(key.key)
    if known is None:
        known = _classify(mapper, clause)  # raises PlaneError every time: errors are not remembered
        if len(_PLANES) >= _PLANES_MAX:
            _PLANES.clear()
        _PLANES[key.key] = known
    return known


def _classify(mapper: Any, clause: Any) -> bool:
    names = _tables(mapper, clause)
    control = [n for n in names if n in CONTROL_TABLES]
    if not control:
        return False
    if len(control) == len(names):
        return True
    if set(control) == {"tenants"}:
        return False  # data joined with the tenant's own row: the data plane has a copy of it
    raise PlaneError(f"one statement reads control-plane tables {sorted(control)} and data-plane tables "
                     f"{sorted(set(names) - set(control))}")


class RoutedSession(Session):
    def get_bind(self, mapper: Any = None, *, clause: Any = None, bind: Any = None, **kw: Any) -> Any:
        if bind is not None:
            return bind
        data = self.info.get(DATA_BIND)
        if data is None or is_control(mapper, clause):
            return super().get_bind(mapper, clause=clause, **kw)
        return data
