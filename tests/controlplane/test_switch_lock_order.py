"""An operator's action on a tenant (suspend, limits, patch) takes the tenant's lock before its row, in the
order a move's switch takes them: it waits for the switch instead of deadlocking with it (found by the
schemathesis run: POST /v1/tenants/{id}/suspend answered 503 "deadlock detected" during a move)."""
from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

LOCK = "hashtextextended('stalela.tenant:' || :t, 0)"


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
@pytest.mark.parametrize("action", ["suspend", "patch"])
async def test_an_operator_action_waits_for_a_switch(app, client, new_tenant, operator_headers, action):
    tenant, _ = await new_tenant("Switching SARL", "SW1")
    tid = tenant["id"]
    engine = create_async_engine(app.state.settings.effective_database_url)
    try:
        async with engine.connect() as mover:
            await mover.execute(text(f"SELECT pg_advisory_lock({LOCK})"), {"t": tid})  # the move's freeze
            await mover.commit()
            if action == "suspend":
                call = client.post(f"/v1/tenants/{tid}/suspend", headers=operator_headers)
            else:
                call = client.patch(f"/v1/tenants/{tid}", json={"rate_limit_burst": 77}, headers=operator_headers)
            pending = asyncio.create_task(call)
            await asyncio.sleep(0.8)
            assert not pending.done()  # waiting for the switch, holding nothing the switch needs
            await mover.execute(text("SELECT set_config('stalela.platform', 'on', true)"))
            await mover.execute(text("UPDATE tenants SET updated_at = now() WHERE id = :t"), {"t": tid})  # the switch
            await mover.commit()
            await mover.execute(text(f"SELECT pg_advisory_unlock({LOCK})"), {"t": tid})  # the thaw
            await mover.commit()
        answer = await asyncio.wait_for(pending, 30)
        assert answer.status_code == 200, answer.text
    finally:
        await engine.dispose()
