"""Signed download links without a database: rotation of the secrets, lifetime by the exports' clock."""
from __future__ import annotations

import pytest

from stalela.config import Settings
from stalela.privacy import links
from tests.conftest import MASTER_KEY


def settings(secrets: str | None = None, **kw) -> Settings:
    return Settings(master_key=MASTER_KEY, export_link_secrets=secrets, _env_file=None, **kw)


def test_a_link_names_its_export_and_tenant():
    token = links.issue(settings(), "ten_1", "pex_1")
    claims = links.read(settings(), token)
    assert (claims.export_id, claims.tenant_id, claims.expired) == ("pex_1", "ten_1", False)


def test_rotation_the_newest_secret_signs_and_every_listed_one_verifies():
    old = links.issue(settings("old-secret"), "ten_1", "pex_1")
    rotated = settings("new-secret, old-secret")
    assert links.read(rotated, old).export_id == "pex_1"  # links made before the rotation still open
    new = links.issue(rotated, "ten_1", "pex_2")
    assert links.read(settings("new-secret"), new).export_id == "pex_2"  # signed with the newest
    with pytest.raises(links.LinkInvalid):
        links.read(settings("old-secret"), new)
    with pytest.raises(links.LinkInvalid):  # the old secret dropped: its links stop working
        links.read(settings("new-secret"), old)


def test_the_default_secret_is_derived_from_the_master_key():
    token = links.issue(settings(), "ten_1", "pex_1")
    other_master = Settings(master_key="7a" * 32, _env_file=None)
    with pytest.raises(links.LinkInvalid):
        links.read(other_master, token)
    assert links.link_secrets(settings()) != links.link_secrets(other_master)


def test_a_link_expires_by_the_exports_clock():
    from datetime import timedelta

    from stalela.privacy import export_clock

    start = export_clock.now()
    token = links.issue(settings(), "ten_1", "pex_1")
    with export_clock.use_clock(lambda: start + timedelta(hours=71, minutes=59)):
        assert links.read(settings(), token).expired is False
    with export_clock.use_clock(lambda: start + timedelta(hours=72, seconds=2)):
        claims = links.read(settings(), token)
        assert claims.expired is True and claims.export_id == "pex_1"  # still says which export (410, not 403)
    with export_clock.use_clock(lambda: start + timedelta(hours=2)):
        assert links.read(settings(export_link_hours=1), token).expired is True


@pytest.mark.parametrize("token", [None, "", "x", "eyJlIjoicGV4XzEiLCJ0IjoidGVuXzEifQ.AAAAAA.AAAA"])
def test_anything_else_is_invalid(token):
    with pytest.raises(links.LinkInvalid) as caught:
        links.read(settings(), token)
    assert caught.value.status == 403 and caught.value.code == "export_link_invalid"


def test_a_token_signed_for_another_purpose_is_no_link():
    from itsdangerous import URLSafeTimedSerializer

    secret = links.link_secrets(settings())[0]
    forged = URLSafeTimedSerializer(secret, salt="another.purpose").dumps({"e": "pex_1", "t": "ten_1"})
    with pytest.raises(links.LinkInvalid):
        links.read(settings(), forged)
