"""The data map covers every column of every table, names no column that is gone, and its purging rules
are the retention engine's purgers; docs/privacy-retention.md carries it."""
from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table

from stalela.db.base import Base
from stalela.privacy import datamap
from stalela.privacy.retention_repository import PURGERS

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "src" / "stalela"
# What the law makes us keep: the retention engine never deletes a row of these.
FISCAL_TABLES = {"invoices", "series", "z_reports", "merkle_logs", "merkle_nodes", "checkpoints", "authority_acks",
                 "invoice_sync", "report_day_figures"}


@pytest.fixture(scope="module")
def metadata() -> MetaData:
    """Every table: Alembic's aggregate of the models (what the app migrates), and every models module in the
    source tree, so a module not yet listed there is caught too."""
    importlib.import_module("stalela.migrations.metadata")
    for path in SOURCE.rglob("*models.py"):
        importlib.import_module(".".join(("stalela", *path.relative_to(SOURCE).with_suffix("").parts)))
    return Base.metadata


def test_every_column_of_every_table_is_tagged_and_no_tag_is_stale(metadata):
    untagged, stale = datamap.check(metadata)
    assert untagged == [], f"columns without a data map tag (src/stalela/privacy/datamap.py): {untagged}"
    assert stale == [], f"data map tags for columns that no longer exist: {stale}"
    assert len(metadata.tables) >= 30


def test_the_check_names_a_new_column_and_a_dropped_one():
    probe = MetaData()
    Table("users", probe, Column("tenant_id", String), Column("id", String), Column("email", String),
          Column("name", String), Column("role", String), Column("status", String), Column("password_hash", String),
          Column("outlet_ids", String), Column("created_at", String), Column("updated_at", String),
          Column("phone", String))  # new, untagged
    Table("invitations", probe, Column("id", Integer))
    untagged, stale = datamap.check(probe)
    assert untagged == ["users.phone"]
    assert "invitations.email" in stale and "users.email" not in stale and "outlets.address" in stale


def test_tags_use_the_vocabulary():
    for table in datamap.DATA_MAP.values():
        for column, tag in table.columns.items():
            assert tag.category in ("personal", "fiscal", "operational", "secret"), (table.name, column)
            assert datamap.RULE.match(tag.rule), (table.name, column, tag.rule)
    with pytest.raises(ValueError):
        datamap.table("t", "someday", operational="a")
    with pytest.raises(ValueError):
        datamap.table("t", "statutory", public="a")
    with pytest.raises(ValueError):
        datamap.table("t", "statutory", fiscal="a", operational="a")


def test_each_purging_rule_names_its_purger_and_purges_whole_rows(metadata):
    purged = datamap.purgeable_tables()
    assert set(purged) == set(PURGERS), "a purging rule without a purger, or a purger the data map does not name"
    for name, purger in PURGERS.items():
        table = purged[name]
        assert purger.table == table.name, name
        tags = set(table.columns.values())
        # A purge deletes the row: every column of the table goes by the same rule and purger.
        assert {(t.rule, t.purger) for t in tags} == {(table.rule, name)}, name
        anchor = table.rule.rsplit("@", 1)[1]
        assert anchor in metadata.tables[table.name].columns, (name, anchor)
        assert purger.category in ("personal", "operational", "secret"), name
    for table in datamap.DATA_MAP.values():
        for column, tag in table.columns.items():
            assert (tag.purger is not None) == tag.purgeable, (table.name, column)


def test_no_fiscal_record_is_ever_purged():
    for name in FISCAL_TABLES:
        table = datamap.DATA_MAP[name]
        assert table.rule == "statutory" and table.purger is None, name
        assert all(not t.purgeable for t in table.columns.values()), name
    for purger in PURGERS.values():
        assert purger.table not in FISCAL_TABLES
        assert all(t.category != "fiscal" for t in purger.tag.columns.values()), purger.name


def test_secrets_and_personal_data_we_know_of_are_tagged_so():
    expect = {"users.email": "personal", "users.name": "personal", "users.password_hash": "secret",
              "invitations.email": "personal", "api_keys.key_hash": "secret", "refresh_tokens.token_hash": "secret",
              "auth_keys.private_key": "secret", "webhook_endpoints.secret_encrypted": "secret",
              "authority_devices.token_encrypted": "secret", "arca_credentials.key_encrypted": "secret",
              "signing_keys.private_ref": "secret", "invoices.document": "personal",
              "idempotency_keys.response": "personal", "audit_log.ip": "personal"}
    got = {k: datamap.tag(*k.split(".")).category for k in expect}
    assert got == expect


def test_the_docs_carry_the_data_map():
    doc = (ROOT / "docs" / "privacy-retention.md").read_text()
    begin, end = "<!-- datamap:begin -->\n", "<!-- datamap:end -->"
    assert begin in doc and end in doc
    table = doc.split(begin, 1)[1].split(end, 1)[0]
    assert table == datamap.markdown(), (
        "docs/privacy-retention.md is out of date: paste the output of `python -m stalela.privacy.datamap` "
        "between the datamap markers")
    listed = {line.split("`")[1] for line in table.splitlines()[2:]}
    assert listed == set(datamap.DATA_MAP)


def test_the_docs_list_every_statutory_floor_with_its_citation():
    from stalela.privacy.retention_data import FLOORS

    doc = (ROOT / "docs" / "privacy-retention.md").read_text()
    for floor in FLOORS.values():
        assert f"| {floor.years} | {floor.covers} | {floor.citation} |" in doc, floor.jurisdiction


def test_a_table_that_goes_with_another_names_one_a_purger_purges():
    """``with:table``: its rows go in the action of ``table``'s purger (no marks of their own), so that table must
    have one; every column of the dependent table goes the same way (the row goes whole)."""
    along = {t.name: t for t in datamap.DATA_MAP.values() if t.rule.startswith("with:")}
    assert set(along) == {"draft_approvals"}
    purged = {t.name for t in datamap.purgeable_tables().values()}
    for name, table in along.items():
        assert {tag.parent for tag in table.columns.values()} == {table.rule[5:]}, name
        assert table.rule[5:] in purged, name
    assert datamap.tag("invoice_drafts", "text").purger == "stale_invoice_drafts"
