"""A move's change log (migration 0032): the freeze copies and checks only the rows the tenant wrote since the
last online pass, whatever the tenant's size; inserts, updates and deletes alike; other tenants' writes are
never logged; and the triggers are gone once the move is over, completed or failed."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from stalela.controlplane import move_repository, moves
from tests.controlplane.conftest import seal, shared
from tests.controlplane.test_moves import _count, _run_move

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


async def _triggers(engine, tenant_id: str, *, disabled: bool = False) -> int:
    """The tenant's live capture triggers (or, ``disabled``, all of them: a move's end disables them, its purge
    drops them). Other tests' tenants share the database: only this tenant's are counted."""
    live = "" if disabled else " AND tgenabled <> 'D'"
    return await _count(engine, f"SELECT count(*) FROM pg_trigger WHERE tgname = ANY(:n){live}",
                        n=move_repository.trigger_names(tenant_id))


@pytest.fixture
async def owner(tier_app):
    """The log is written by the owner's capture function; the application role may only read it."""
    engine = moves._owner_engine(tier_app.state.db.url)
    yield engine
    await engine.dispose()


async def test_the_freeze_copies_what_the_log_names(tier_client, tier_app, operator_headers, monkeypatch, owner):
    tenant, headers = await shared(tier_client, operator_headers)
    other, other_headers = await shared(tier_client, operator_headers, name="Voisin SARL", tax_id="S0000002B")
    for _ in range(3):
        await seal(tier_client, tenant, headers)
    r = await tier_client.post("/v1/webhook-endpoints", json={"url": "https://hooks.example.org/x",
                                                              "event_types": ["invoice.sealed"]}, headers=headers)
    assert r.status_code == 201, r.text
    endpoint = r.json()["id"]
    control = tier_app.state.db.engine
    # A message and its attempt under the endpoint: deleted below with it, children first on the source; the
    # target must delete them in that order too (its foreign keys are checked at once).
    async with owner.begin() as conn:
        await conn.execute(text("SELECT set_config('stalela.platform', 'on', true)"))
        await conn.execute(text(
            "INSERT INTO webhook_messages (tenant_id, id, endpoint_id, event_id, event_type, payload, status, attempts, "
            "next_attempt_at, created_at, updated_at) VALUES (:t, 'whm_1', :e, 'evt_1', 'invoice.sealed', '{}', "
            "'failed', 1, now(), now(), now())"), {"t": tenant["id"], "e": endpoint})
        await conn.execute(text(
            "INSERT INTO webhook_attempts (tenant_id, id, message_id, endpoint_id, attempt, started_at, outcome) "
            "VALUES (:t, 'wha_1', 'whm_1', :e, 1, now(), 'failed')"), {"t": tenant["id"], "e": endpoint})
    original = moves._catch_up_online
    seen: dict[str, int] = {}

    async def online_then_write(*args, **kwargs):
        passes = await original(*args, **kwargs)
        # After the last online pass, before the freeze: an insert (a seal writes many tables), an update
        # (the outlet's name) and a delete (a row removed from the source), for the freeze alone to copy.
        await seal(tier_client, tenant, headers)
        r = await tier_client.patch(f"/v1/outlets/{tenant['outlet']}", json={"name": "Renamed"}, headers=headers)
        assert r.status_code == 200, r.text
        async with control.begin() as conn:
            await conn.execute(text("SELECT set_config('stalela.platform', 'on', true)"))
            for table, column in (("webhook_attempts", "endpoint_id"), ("webhook_messages", "endpoint_id"),
                                  ("webhook_endpoints", "id")):
                await conn.execute(text(f"DELETE FROM {table} WHERE tenant_id = :t AND {column} = :i"),
                                   {"t": tenant["id"], "i": endpoint})
        await seal(tier_client, other, other_headers)
        seen["triggers"] = await _triggers(owner, tenant["id"])
        seen["logged"] = await _count(owner, "SELECT count(*) FROM move_changes WHERE tenant_id = :t", t=tenant["id"])
        seen["other"] = await _count(owner, "SELECT count(*) FROM move_changes WHERE tenant_id = :t", t=other["id"])
        return passes

    monkeypatch.setattr(moves, "_catch_up_online", online_then_write)
    move = await _run_move(tier_client, tier_app, operator_headers, tenant["id"], {"to": "dedicated"})
    assert move["status"] == "completed", move
    assert seen["triggers"] > 0 and seen["logged"] > 0
    assert seen["other"] == 0  # the neighbour's writes pay nothing and are not logged
    payload = move["receipt"]["payload"]
    assert payload["version"] == 2
    freeze = payload["freeze"]
    assert not freeze.get("full_pass"), freeze  # the log had everything: no full diff under the freeze
    assert freeze["rows_caught_up"] > 0
    assert payload["online_catch_up"] and payload["online_catch_up"][-1]["keys"] <= moves.ONLINE_PASS_ROWS
    assert payload["from"]["caught_up_digests"] == payload["to"]["caught_up_digests"]
    assert payload["from"]["caught_up_digests"]["invoices"]

    target = tier_app.state.db.fleet.database(move["target"]).engine
    t = tenant["id"]
    assert await _count(target, "SELECT count(*) FROM invoices WHERE tenant_id = :t", t=t) == 4
    for table in ("webhook_endpoints", "webhook_messages", "webhook_attempts"):
        assert await _count(target, f"SELECT count(*) FROM {table} WHERE tenant_id = :t", t=t) == 0, table
    assert await _count(target, "SELECT count(*) FROM outlets WHERE tenant_id = :t AND name = 'Renamed'", t=t) == 1
    # The carried row counts are the target's real ones.
    for table, rows in payload["rows_at_switch"]["tables"].items():
        assert await _count(target, f"SELECT count(*) FROM {table} WHERE tenant_id = :t", t=t) == rows, table
    # The move is over: no trigger left, the tenant's log forgotten; the tenant seals on.
    assert await _triggers(owner, t) == 0
    assert await _count(owner, "SELECT count(*) FROM move_changes WHERE tenant_id = :t", t=t) == 0
    with pytest.raises(Exception, match="permission denied"):  # the application role only reads the log
        async with control.begin() as conn:
            await conn.execute(text("SELECT set_config('stalela.platform', 'on', true)"))
            await conn.execute(text("INSERT INTO move_changes (tenant_id, tbl, key) VALUES (:t, 'x', '[]')"), {"t": t})
    assert (await seal(tier_client, tenant, headers))["seal"]["payload"]["counter"] == 5
    # The purge of the source drops the disabled triggers.
    assert await _triggers(owner, t, disabled=True) > 0
    r = await tier_client.post(f"/v1/tenants/{t}/moves/{move['id']}/purge", headers=operator_headers)
    assert r.status_code == 202
    await moves.purge(tier_app.state.db, tier_app.state.settings, t, move["id"])
    assert await _triggers(owner, t, disabled=True) == 0


async def test_a_failed_move_drops_its_triggers(tier_client, tier_app, operator_headers, monkeypatch, owner):
    tenant, headers = await shared(tier_client, operator_headers)
    await seal(tier_client, tenant, headers)

    async def broken(*args, **kwargs):
        raise OSError("verification host went away")

    monkeypatch.setattr(moves, "_verify_copy", broken)
    r = await tier_client.post(f"/v1/tenants/{tenant['id']}/move", json={"to": "dedicated"}, headers=operator_headers)
    assert await moves.run(tier_app.state.db, tier_app.state.settings, tenant["id"], r.json()["id"]) == "failed"
    assert await _triggers(owner, tenant["id"]) == 0
    await seal(tier_client, tenant, headers)
    assert await _count(owner, "SELECT count(*) FROM move_changes WHERE tenant_id = :t", t=tenant["id"]) == 0
