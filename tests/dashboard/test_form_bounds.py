"""The console's forms store what the API's schemas allow and nothing longer (issue 24 item 5).

A form that skipped the API's schema stored text longer than its column: PostgreSQL refused it after
validation (a 500, an error page), SQLite kept it. The forms go through the same schemas, so the
column bounds checked in tests/api/test_string_bounds.py hold here too.
"""
from __future__ import annotations

import pytest

from tests.dashboard.conftest import email


async def test_a_device_url_longer_than_its_column_is_refused_by_the_form(owner, org):
    await owner.get("/app/outlets")
    url = "http://127.0.0.1:9/" + "a" * 600
    r = await owner.post(f"/app/outlets/{org['outlet']['id']}/device", {"nim": "NIM1", "base_url": url, "token": "t"})
    assert r.status_code == 422, r.text[:300]
    assert "base_url" in r.text
    page = await owner.get("/app/outlets")
    assert "NIM1" not in page.text  # nothing stored


@pytest.mark.parametrize("field, value", [("name", "N" * 201), ("email", "a" * 250 + "@x.cd")])
async def test_an_invitation_longer_than_its_columns_is_refused_by_the_form(owner, org, field, value):
    await owner.get("/app/users")
    form = {"email": email(org, "new"), "name": "New", "role": "cashier", field: value}
    r = await owner.post("/app/users/invite", form)
    assert r.status_code == 422, r.text[:300]
    assert field in r.text
