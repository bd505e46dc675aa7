"""Access-token keys are cached per database: a process that opens two control planes (tests, an embedding)
signs with each one's key and verifies against the same one, even when the other's cache was refreshed."""
from __future__ import annotations

from stalela.auth import tokens
from stalela.db.session import Database
from stalela.migrations import upgrade
from tests.conftest import make_settings


async def test_two_databases_keep_their_own_keys(tmp_path):
    dbs, settings = [], []
    for name in ("one", "two"):
        url = f"sqlite:///{tmp_path / name}.db"
        await upgrade(url)
        s = make_settings(url, tmp_path)
        dbs.append(Database.from_settings(s))
        settings.append(s)
    try:
        for db, s in zip(dbs, settings):
            await tokens.ensure_key(db, s)
        token, _ = await tokens.issue_access_token(dbs[0], settings[0], user_id="usr_1", tenant_id="ten_1",
                                                   role="admin", email="a@b.cd")
        await tokens._load(dbs[1], settings[1], force=True)  # noqa: SLF001 - the other database's refresh
        assert (await tokens.verify_access_token(dbs[0], settings[0], token))["sub"] == "usr_1"
        other, _ = await tokens.issue_access_token(dbs[1], settings[1], user_id="usr_2", tenant_id="ten_2",
                                                   role="admin", email="c@d.cd")
        assert tokens.jwt.get_unverified_header(other)["kid"] != tokens.jwt.get_unverified_header(token)["kid"]
    finally:
        for db in dbs:
            await db.dispose()
