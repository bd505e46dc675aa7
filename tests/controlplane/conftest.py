"""Fixtures of the operator tests: cheap Argon2, and a factory of operators made through the API."""
from __future__ import annotations

import secrets

import pytest

from tests.conftest import make_settings

PASSWORD = "operator passphrase 2026"


@pytest.fixture
def settings(database_url, tmp_path):
    return make_settings(database_url, tmp_path, argon2_time_cost=1, argon2_memory_kib=1024, argon2_parallelism=1)


def unique_email(who: str) -> str:
    """Tests share one database per backend: every operator gets an address of its own."""
    return f"{who}.{secrets.token_hex(5)}@ops.stalela.test"


@pytest.fixture
def new_operator(client, operator_headers):
    async def make(role: str = "platform_admin", *, who: str = "op", password: str | None = PASSWORD) -> dict:
        body = {"email": unique_email(who), "name": who.title(), "role": role}
        if password is not None:
            body["password"] = password
        r = await client.post("/v1/operators", json=body, headers=operator_headers)
        assert r.status_code == 201, r.text
        return r.json()

    return make
