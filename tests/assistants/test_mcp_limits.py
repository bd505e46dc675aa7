"""MCP tool calls are API calls: the key's rate limit (the same bucket as its REST calls), the plan's
``api_calls`` cap, and the meter that bills them, on SQLite and PostgreSQL."""
from __future__ import annotations

from decimal import Decimal

import pytest

from tests.assistants.test_mcp import failure, mcp, structured
from tests.auth.test_limits import set_limits
from tests.billing.test_api_quota import _capped


@pytest.fixture
def settings(database_url, tmp_path):
    from tests.conftest import make_settings

    return make_settings(database_url, tmp_path, usage_flush_seconds=3600)


async def test_the_rate_limit_is_the_keys_whichever_door(app, client, new_tenant):
    tenant, key = await new_tenant("Limited SARL", "LIM1")
    await set_limits(app, tenant["id"], Decimal("0.01"), 3)
    assert (await client.get("/v1/outlets", headers=key)).status_code == 200  # one of the three from the bucket
    async with mcp(app, key) as m:
        structured(await m.call_tool("list_invoices", {}))
        structured(await m.call_tool("list_invoices", {}))
        refused = failure(await m.call_tool("list_invoices", {}))
    assert refused["code"] == "rate_limited" and refused["retry_after_seconds"] >= 1
    assert (await client.get("/v1/outlets", headers=key)).status_code == 429


async def test_tool_calls_count_as_api_calls_and_stop_at_the_cap(app, client, operator_headers, new_tenant):
    pid, tenant, headers = await _capped(client, operator_headers, new_tenant, 3)
    counter = app.state.api_calls
    before = counter.counted.get(tenant["id"], 0)
    async with mcp(app, headers) as m:
        outcomes = [(await m.call_tool("list_invoices", {})).is_error for _ in range(5)]
        refused = failure(await m.call_tool("search_api_docs", {"query": "invoice"}))
    assert outcomes == [False] * (3 - before) + [True] * (2 + before)
    assert refused["code"] == "quota_exceeded"
    assert counter.counted[tenant["id"]] == 3  # refused calls are not billed
    assert (await client.get("/v1/outlets", headers=headers)).status_code == 429
