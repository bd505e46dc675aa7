"""The migrations form one line with one head: `/readyz`, `stalela migrate` and the console report a single
revision, and two branches landing side by side fail here until they are renumbered or merged."""
from __future__ import annotations

from alembic.script import ScriptDirectory

from stalela.migrations import alembic_config


def test_the_migrations_have_exactly_one_head():
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert len(heads) == 1, (
        f"migrations have {len(heads)} heads ({', '.join(sorted(heads))}): give the newer one the other as its "
        "down_revision (renumbered after it), or add a merge revision")
