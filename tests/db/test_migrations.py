"""Data migrations on both databases: rows written by the previous schema come out right."""
from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
from sqlalchemy import text

from stalela.db.engine import create_engine
from stalela.migrations import upgrade
from tests.support.databases import create_database, drop_database


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database_url(request, tmp_path, postgres_server) -> str:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    if not postgres_server.admin_url:
        pytest.skip(postgres_server.reason)
    url = create_database(postgres_server.admin_url)
    yield url
    drop_database(postgres_server.admin_url, url)


async def test_0012_backfills_first_business_days_without_refusing_a_day_with_sales(empty_database_url):
    for revision in ("0011", "0008"):  # the schema before 0012, reports included
        await upgrade(empty_database_url, revision=revision)
    at = datetime(2026, 11, 20, 23, 0, tzinfo=timezone.utc)  # the 20th in Pago Pago, the 21st in Kiritimati
    engine = create_engine(empty_database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO tenants (id, name, tax_id, jurisdiction, status, created_at, updated_at)"
                                    " VALUES ('ten_1', 'T', 'A1', 'CD', 'active', :at, :at)"), {"at": at})
            for outlet_id, tz in (("out_moved", "Pacific/Kiritimati"), ("out_west", "Pacific/Pago_Pago"),
                                  ("out_kin", "Africa/Kinshasa")):
                await conn.execute(text(
                    "INSERT INTO outlets (tenant_id, id, code, name, timezone, status, created_at, updated_at)"
                    " VALUES ('ten_1', :id, :id, :id, :tz, 'active', :at, :at)"), {"id": outlet_id, "tz": tz, "at": at})
            # out_moved sold on the 20th while it was in Pago Pago, then moved to Kiritimati (the 21st there).
            await conn.execute(text(
                "INSERT INTO report_day_figures (tenant_id, outlet_id, business_day, figures, updated_at)"
                " VALUES ('ten_1', 'out_moved', :day, '{}', :at)"), {"day": date(2026, 11, 20), "at": at})
        await upgrade(empty_database_url)
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT id, first_business_day FROM outlets ORDER BY id"))).all()
    finally:
        await engine.dispose()
    assert [(i, str(d)) for i, d in rows] == [
        ("out_kin", "2026-11-21"),    # 00:00 on the 21st in Kinshasa
        ("out_moved", "2026-11-20"),  # its creation day in Kiritimati is the 21st, but the 20th has sales
        ("out_west", "2026-11-20"),
    ]
