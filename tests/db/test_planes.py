"""Every table belongs to a plane, and a session sends each statement to its plane's database."""
from __future__ import annotations

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from stalela.db.base import Base
from stalela.db.routing import CONTROL_TABLES, DATA_BIND, PlaneError, RoutedSession, is_control
from stalela.migrations import metadata as _all_models  # noqa: F401  (every domain's tables)
from stalela.fiscal.invoices.models import Invoice
from stalela.tenancy.models import ApiKey, Outlet, Tenant

# Data-plane tables without a tenant_id: platform rows every database carries (created by migrations).
SHARED_BY_EVERY_DATABASE = {"retention_schedule"}


def test_every_table_has_a_plane():
    tables = set(Base.metadata.tables)
    assert CONTROL_TABLES - {"alembic_version"} <= tables, "CONTROL_TABLES names a table that does not exist"
    for name, table in Base.metadata.tables.items():
        if name in CONTROL_TABLES:
            continue
        assert "tenant_id" in table.c or name in SHARED_BY_EVERY_DATABASE, (
            f"{name}: a data-plane table without tenant_id cannot be moved with its tenant; classify it in "
            "stalela.db.routing.CONTROL_TABLES or give it a tenant_id")


def test_statements_are_classified_by_their_tables():
    assert is_control(clause=select(ApiKey))
    assert is_control(clause=select(Tenant.id))
    assert not is_control(clause=select(Invoice))
    assert not is_control(clause=text("SELECT 1"))  # raw SQL: the data plane unless the caller names a bind
    assert not is_control(clause=select(Outlet.id, Tenant.name).join(Tenant, Tenant.id == Outlet.tenant_id))
    with pytest.raises(PlaneError):
        is_control(clause=select(Invoice.id, ApiKey.id).join(ApiKey, ApiKey.tenant_id == Invoice.tenant_id))


def test_a_routed_session_sends_data_statements_to_its_data_plane():
    from sqlalchemy import create_engine

    control, data = create_engine("sqlite://"), create_engine("sqlite://")
    session = RoutedSession(bind=control)
    assert session.get_bind(clause=select(Invoice)) is control  # no data plane: the shared tier
    session.info[DATA_BIND] = data
    assert session.get_bind(clause=select(Invoice)) is data
    assert session.get_bind(clause=select(ApiKey)) is control
    assert session.get_bind(Outlet.__mapper__) is data
    assert session.get_bind(clause=text("SELECT 1")) is data
    assert session.get_bind(clause=text("SELECT 1"), bind=control) is control
    assert isinstance(session, Session)


def test_a_statement_plane_is_remembered_by_its_cache_key():
    """The plane of a statement is looked up by its cache key: the same shape with other values hits the
    cache, another shape is classified anew, and a statement across both planes fails every time."""
    from stalela.db import routing

    walked: list[object] = []
    classify = routing._classify

    def counting(mapper, clause):
        walked.append(clause)
        return classify(mapper, clause)

    routing._PLANES.clear()
    original, routing._classify = routing._classify, counting
    try:
        assert not is_control(clause=select(Invoice).where(Invoice.id == "a"))
        assert not is_control(clause=select(Invoice).where(Invoice.id == "b"))
        assert len(walked) == 1  # the second one, same shape, came from the cache
        assert is_control(clause=select(ApiKey).where(ApiKey.id == "a"))
        assert len(walked) == 2
        assert not is_control(clause=text("SELECT 1")) and not is_control(clause=text("SELECT 1"))
        assert len(walked) == 4  # raw SQL has no cache key: classified every time
        mixed = select(Invoice.id, ApiKey.id).join(ApiKey, ApiKey.tenant_id == Invoice.tenant_id)
        for _ in range(2):
            with pytest.raises(PlaneError):
                is_control(clause=mixed)
        assert len(walked) == 6
    finally:
        routing._classify = original
