"""`/readyz` reports the database's single current revision and the one the code expects (issue 23, item 8: it
used to answer three comma-joined heads)."""
from __future__ import annotations

import httpx
from alembic.script import ScriptDirectory

from stalela.app import create_app
from stalela.migrations import alembic_config, head_revisions, upgrade
from tests.conftest import make_settings


def _latest_file_revision() -> str:
    """The revision of the newest migration file, read apart from the code under test."""
    script = ScriptDirectory.from_config(alembic_config())
    return max(script.walk_revisions(), key=lambda r: r.path).revision


async def _readyz(settings) -> httpx.Response:  # noqa: ANN001
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
            return await c.get("/readyz")


async def test_readyz_reports_the_single_current_and_expected_revision(client):
    r = await client.get("/readyz")
    body = r.json()
    assert r.status_code == 200 and body["status"] == "ok", r.text
    head = _latest_file_revision()
    assert body["migration"] == body["expected"] == head and "," not in head, body


async def test_a_database_behind_reports_both_revisions(tmp_path):
    (head,) = head_revisions()
    previous = ScriptDirectory.from_config(alembic_config()).get_revision(head).down_revision
    assert isinstance(previous, str), "the head is not a merge: one revision before it"
    url = f"sqlite+aiosqlite:///{tmp_path / 'behind.db'}"
    await upgrade(url, revision=previous)
    r = await _readyz(make_settings(url, tmp_path))
    assert r.status_code == 503, r.text
    assert r.json() == {"status": "unavailable", "database": "ok", "migration": previous, "expected": head}
