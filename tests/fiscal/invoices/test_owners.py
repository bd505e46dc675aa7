"""Seal routing between API processes (owners.py), on SQLite and PostgreSQL: two sealers of one
database, each with its own socket in one directory, as two `stalela serve` workers have. A tenant's
seals made through either are sealed by its owner, rejections come back as themselves, and a lost or
stopping owner never loses a seal nor seals one twice."""
from __future__ import annotations

import asyncio
import socket
from collections import Counter
from pathlib import Path

import pytest

from stalela.auth.principal import Principal
from stalela.errors import ServiceUnavailable, StalelaError
from stalela.fiscal.invoices.group_commit import Sealer
from stalela.fiscal.invoices.owners import NotDelivered, SealRouter
from stalela.fiscal.invoices.schemas import InvoiceCreate
from stalela.fiscal.invoices.sealing import SealRequest, prepare
from tests.support.invoices import sample_invoice


@pytest.fixture
def peers_dir(tmp_path) -> Path:
    # A short path: a Unix socket's path is limited to about 100 bytes.
    import tempfile

    return Path(tempfile.mkdtemp(prefix="sp-", dir="/tmp"))


class Pair:
    """Two sealers on one database, as the processes "a" and "b"; ``served`` counts, per sealer, the
    requests it sealed for the other."""

    def __init__(self, app, directory: Path) -> None:
        self.served: Counter[str] = Counter()
        self.sealers: dict[str, Sealer] = {}
        for name in ("a", "b"):
            sealer = Sealer(app.state.db, app.state.sealer.settings)
            sealer.router = SealRouter(directory, self._counting(name, sealer), name=f"{name}.sock")
            self.sealers[name] = sealer

    def _counting(self, name: str, sealer: Sealer):
        async def handle(kind, payload):  # noqa: ANN001, ANN202
            self.served[name] += 1
            return await sealer._serve_peer(kind, payload)
        return handle

    async def start(self) -> None:
        for sealer in self.sealers.values():
            await sealer.router.start()

    async def close(self) -> None:
        for sealer in self.sealers.values():
            await sealer.close()

    def owner_of(self, tenant_id: str) -> str:
        a = self.sealers["a"].router.owner(tenant_id)
        return "a" if a is None else a.removesuffix(".sock")


@pytest.fixture
async def pair(app, peers_dir):
    p = Pair(app, peers_dir)
    await p.start()
    yield p
    await p.close()


@pytest.fixture
async def shop(client, new_tenant):
    tenant, headers = await new_tenant("Owners SARL", "A7776665C")
    outlets = [(await client.post("/v1/outlets", json={"code": f"W{n}", "name": f"Till {n}"}, headers=headers)).json()
               for n in range(2)]
    principal = Principal(kind="api_key", tenant_id=tenant["id"], tenant_status="active", jurisdiction="CD")
    return tenant, headers, outlets, principal


def _request(principal: Principal, outlet_id: str, key: str | None = None, **overrides) -> SealRequest:  # noqa: ANN003
    body = InvoiceCreate.model_validate(sample_invoice(outlet_id, **overrides))
    return prepare(SealRequest(principal, body, key))


async def test_every_process_agrees_on_one_owner_per_tenant(pair):
    a, b = pair.sealers["a"].router, pair.sealers["b"].router
    owners = Counter()
    for i in range(200):
        tenant = f"ten_{i}"
        by_a, by_b = a.owner(tenant), b.owner(tenant)
        assert (by_a is None) != (by_b is None)  # exactly one of them is the owner
        owners["a" if by_a is None else "b"] += 1
        assert (by_a or by_b) in ("a.sock", "b.sock")
    assert min(owners.values()) > 60  # rendezvous hashing spreads tenants (200 over 2: ~100 each)


async def test_seals_made_through_either_process_are_sealed_by_the_owner(client, pair, shop):
    tenant, headers, outlets, principal = shop
    owner = pair.owner_of(tenant["id"])
    other = "b" if owner == "a" else "a"
    requests = [_request(principal, outlets[i % 2]["id"]) for i in range(12)]
    results = await asyncio.gather(*[pair.sealers[other if i % 3 else owner].seal(r) for i, r in enumerate(requests)])
    assert all(r.status == 201 for r in results)
    assert pair.served[owner] == 8 and pair.served[other] == 0  # the 8 made through the other were handed over
    for outlet in outlets:
        counters = sorted(r.body["counter"] for r in results if r.body["outlet_id"] == outlet["id"])
        assert counters == list(range(1, len(counters) + 1))  # gap-free across both entry points
    # The answer is the invoice as stored.
    got = (await client.get(f"/v1/invoices/{results[1].body['id']}", headers=headers)).json()
    assert got["seal"]["hash"] == results[1].body["seal"]["hash"]


async def test_a_rejection_comes_back_as_itself_and_consumes_nothing(pair, shop):
    tenant, _, outlets, principal = shop
    other = "b" if pair.owner_of(tenant["id"]) == "a" else "a"
    with pytest.raises(StalelaError) as rejected:
        await pair.sealers[other].seal(_request(principal, outlets[0]["id"], type="ZZ"))
    assert rejected.value.status == 422 and rejected.value.code and rejected.value.field
    with pytest.raises(StalelaError) as missing:
        await pair.sealers[other].seal(_request(principal, "out_doesnotexist"))
    assert missing.value.code == "outlet_not_found"
    sealed = await pair.sealers[other].seal(_request(principal, outlets[0]["id"]))
    assert sealed.body["counter"] == 1


async def test_a_batch_is_handed_over_and_answered_in_order(pair, shop):
    tenant, _, outlets, principal = shop
    owner = pair.owner_of(tenant["id"])
    other = "b" if owner == "a" else "a"
    requests = [_request(principal, outlets[0]["id"], key=f"k{i}", **({"type": "ZZ"} if i == 2 else {}))
                for i in range(5)]
    outcomes = await pair.sealers[other].seal_batch(tenant["id"], requests)
    assert pair.served[owner] == 1
    assert [getattr(o, "status", None) for o in outcomes] == [201, 201, 422, 201, 201]
    assert [o.body["counter"] for o in outcomes if not isinstance(o, StalelaError)] == [1, 2, 3, 4]


async def test_a_stopped_owner_hands_its_tenants_back(pair, shop):
    tenant, _, outlets, principal = shop
    owner = pair.owner_of(tenant["id"])
    other = "b" if owner == "a" else "a"
    await pair.sealers[owner].close()  # its socket is gone; the other still lists it for up to a second
    result = await pair.sealers[other].seal(_request(principal, outlets[0]["id"]))
    assert result.status == 201 and pair.served[owner] == 0
    assert pair.sealers[other].router.owner(tenant["id"]) is None  # forgotten at once


async def test_a_dead_processs_socket_is_removed(pair, shop, peers_dir):
    tenant, _, outlets, principal = shop
    # A process killed with SIGKILL leaves its socket file, with nobody listening on it.
    ghost = socket.socket(socket.AF_UNIX)
    ghost.bind(str(peers_dir / "ghost.sock"))
    ghost.close()
    router = pair.sealers["a"].router
    router.listed_at = float("-inf")
    ghost_tenants = [t for t in (f"ten_{i}" for i in range(100)) if router.owner(t) == "ghost.sock"]
    assert ghost_tenants
    # Sealing for a tenant the ghost "owns" works, and the ghost is forgotten and its file removed.
    real = tenant["id"]
    router.owners[real] = "ghost.sock"
    result = await pair.sealers["a"].seal(_request(principal, outlets[0]["id"]))
    assert result.status == 201
    assert not (peers_dir / "ghost.sock").exists()
    assert "ghost.sock" not in router.members


async def _hung_owner(directory: Path) -> tuple[SealRouter, asyncio.Event]:
    """An owner that receives requests and never answers, until it "dies" (its connections drop)."""
    received = asyncio.Event()

    async def hang(kind, payload):  # noqa: ANN001, ANN202
        received.set()
        await asyncio.Event().wait()

    router = SealRouter(directory, hang, name="hung.sock")
    await router.start()
    return router, received


async def _crash(router: SealRouter) -> None:
    router.server.close()
    for writer in list(router.accepted):
        writer.transport.abort()
    for task in list(router.serving):
        task.cancel()


async def _owned_by_a_hung_owner(pair, tenant_id: str, peers_dir: Path) -> tuple[SealRouter, asyncio.Event]:  # noqa: ANN001
    """Process "a" believes the hung owner owns ``tenant_id``."""
    hung, received = await _hung_owner(peers_dir)
    router = pair.sealers["a"].router
    router.listed_at = float("-inf")
    router.owner(tenant_id)
    router.owners[tenant_id] = "hung.sock"
    return hung, received


async def test_an_owner_lost_mid_request_is_a_503_without_a_key(pair, shop, peers_dir):
    tenant, _, outlets, principal = shop
    hung, received = await _owned_by_a_hung_owner(pair, tenant["id"], peers_dir)
    call = asyncio.create_task(pair.sealers["a"].seal(_request(principal, outlets[0]["id"])))
    await asyncio.wait_for(received.wait(), 5)
    await _crash(hung)
    with pytest.raises(ServiceUnavailable) as lost:
        await asyncio.wait_for(call, 5)
    assert lost.value.code == "seal_owner_lost"


async def test_an_owner_lost_mid_request_is_sealed_here_once_with_a_key(client, pair, shop, peers_dir):
    tenant, headers, outlets, principal = shop
    hung, received = await _owned_by_a_hung_owner(pair, tenant["id"], peers_dir)
    call = asyncio.create_task(pair.sealers["a"].seal(_request(principal, outlets[0]["id"], key="lost-key")))
    await asyncio.wait_for(received.wait(), 5)
    await _crash(hung)
    result = await asyncio.wait_for(call, 10)
    assert result.status == 201 and result.body["counter"] == 1
    # The key now answers the original, wherever it is asked.
    again = await pair.sealers["b"].seal(_request(principal, outlets[0]["id"], key="lost-key"))
    assert again.replayed and again.body["id"] == result.body["id"]
    listed = (await client.get("/v1/invoices", headers=headers)).json()["data"]
    assert len(listed) == 1


async def test_a_stopping_owner_finishes_what_it_took_and_refuses_the_rest(pair, shop):
    tenant, _, outlets, principal = shop
    owner = pair.owner_of(tenant["id"])
    other = "b" if owner == "a" else "a"
    calls = [asyncio.create_task(pair.sealers[other].seal(_request(principal, outlets[0]["id"]))) for _ in range(6)]
    await asyncio.sleep(0)
    await asyncio.gather(pair.sealers[owner].close(), *calls)
    counters = sorted(c.result().body["counter"] for c in calls)
    assert counters == list(range(1, 7))


async def test_a_batch_larger_than_a_group_is_sealed_in_slices_with_the_same_outcomes(app, shop, peers_dir):
    """Slices of ``group_commit_max``, one transaction each: a key repeated across slices is answered as
    within one (the original again, or idempotency_key_reused for another body); order and numbers hold."""
    tenant, _, outlets, principal = shop
    sealer = Sealer(app.state.db, app.state.sealer.settings.model_copy(update={"group_commit_max": 3}))
    sizes = []
    real = sealer._isolated

    async def spy(tenant_id, requests):  # noqa: ANN001, ANN202
        sizes.append(len(requests))
        return await real(tenant_id, requests)

    sealer._isolated = spy
    o = outlets[0]["id"]
    requests = [_request(principal, o, key="k0"), _request(principal, o, key="k1"), _request(principal, o, key="k2"),
                _request(principal, o, key="k0"),  # the same body again, in the next slice: the original
                _request(principal, o, key="k1", reference="other"),  # another body: refused
                _request(principal, o, key="k5"), _request(principal, o, key="k6")]
    outcomes = await sealer.seal_batch(tenant["id"], requests)
    assert sizes == [3, 3, 1]
    assert outcomes[3].replayed and outcomes[3].body["id"] == outcomes[0].body["id"]
    assert isinstance(outcomes[4], StalelaError) and outcomes[4].code == "idempotency_key_reused"
    assert [outcomes[i].body["counter"] for i in (0, 1, 2, 5, 6)] == [1, 2, 3, 4, 5]


# Review of issue 22 (h-review): a stopping owner's answers to requests it took, and batches whose
# later slice fails after earlier slices were committed.


async def _retiring(peer) -> None:  # noqa: ANN001
    """Until the owner's goodbye has reached this connection."""
    for _ in range(500):
        if peer.retiring:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no goodbye")


async def _slow_owner_and_sender(peers_dir: Path):  # noqa: ANN202
    """An owner that answers ``("sealed", payload)`` once ``release`` is set (``received``: it took one),
    and a sender that owns nothing."""
    release, received = asyncio.Event(), asyncio.Event()

    async def slow(kind, payload):  # noqa: ANN001, ANN202
        received.set()
        await release.wait()
        return ("sealed", payload)

    owner = SealRouter(peers_dir, slow, name="owner.sock")
    sender = SealRouter(peers_dir, None, name="sender.sock")
    await owner.start()
    await sender.start()
    return owner, sender, release, received


async def test_a_request_in_flight_is_answered_when_a_later_one_is_refused_by_the_stopping_owner(peers_dir):
    """The owner took the first request and will answer it; the second, sent after its goodbye, is
    refused ("not delivered"). Forgetting the owner then must not drop the first one's connection:
    that would turn an answer on its way into OwnerLost (a 503 without a key, for a sealed invoice)."""
    owner, sender, release, received = await _slow_owner_and_sender(peers_dir)
    first = asyncio.create_task(sender.call("owner.sock", "seal", 1))
    await asyncio.wait_for(received.wait(), 5)
    stopping = asyncio.create_task(owner.close(grace=5))
    await _retiring(sender.peers["owner.sock"])
    with pytest.raises(NotDelivered):
        await sender.call("owner.sock", "seal", 2)  # sealed by the sender itself
    release.set()
    assert await asyncio.wait_for(first, 5) == ("sealed", 1)
    await asyncio.wait_for(stopping, 10)
    await sender.close()


async def test_a_seal_taken_by_a_stopping_owner_is_answered_not_503(client, pair, shop):
    """The same through two sealers on one database: a seal without a key, taken by its owner just
    before the owner began to stop, gets its invoice (it is sealed), not 503 seal_owner_lost."""
    tenant, headers, outlets, principal = shop
    owner = pair.owner_of(tenant["id"])
    other = "b" if owner == "a" else "a"
    owning = pair.sealers[owner].router
    release, received = asyncio.Event(), asyncio.Event()
    handle = owning.handler

    async def gated(kind, payload):  # noqa: ANN001, ANN202
        received.set()
        await release.wait()
        return await handle(kind, payload)

    owning.handler = gated
    first = asyncio.create_task(pair.sealers[other].seal(_request(principal, outlets[0]["id"])))
    await asyncio.wait_for(received.wait(), 5)
    stopping = asyncio.create_task(pair.sealers[owner].close())
    await _retiring(pair.sealers[other].router.peers[f"{owner}.sock"])
    second = await pair.sealers[other].seal(_request(principal, outlets[0]["id"]))  # sealed by the other
    release.set()
    await asyncio.wait_for(stopping, 10)
    listed = (await client.get("/v1/invoices", headers=headers)).json()["data"]
    assert len(listed) == 2  # both were sealed, once each
    result = await asyncio.wait_for(first, 5)  # so the first one's answer is its invoice
    assert result.status == 201 and {result.body["id"], second.body["id"]} == {i["id"] for i in listed}


async def test_a_batch_whose_last_slice_fails_answers_the_slices_already_committed(app, client, shop, monkeypatch):
    """group_commit_max 2, three items without keys: the first slice (2) is committed, the second (1)
    meets a database outage. The client must get the two sealed invoices and a 503 for the third, not
    a 503 for the whole batch (its retry would seal the first two again)."""
    from stalela.errors import DatabaseUnavailable
    from stalela.fiscal.invoices import group_commit

    tenant, headers, outlets, _ = shop
    app.state.sealer.settings = app.state.sealer.settings.model_copy(update={"group_commit_max": 2})
    real, calls = group_commit.seal_many, []

    async def outage_on_the_second_slice(session, settings, tenant_id, requests):  # noqa: ANN001
        calls.append(len(requests))
        if len(calls) == 2:
            raise DatabaseUnavailable("the database went away", retry_after=1)
        return await real(session, settings, tenant_id, requests)

    monkeypatch.setattr(group_commit, "seal_many", outage_on_the_second_slice)
    items = [{"invoice": sample_invoice(outlets[0]["id"], reference=f"R-{i}")} for i in range(3)]
    r = await client.post("/v1/invoices/batch", json={"items": items}, headers=headers)
    assert calls == [2, 1]
    listed = (await client.get("/v1/invoices", headers=headers)).json()["data"]
    assert len(listed) == 2  # the first slice is committed
    assert r.status_code == 200, r.text
    out = r.json()
    assert [d["status"] for d in out["data"]] == [201, 201, 503]
    assert {d["invoice"]["id"] for d in out["data"][:2]} == {i["id"] for i in listed}


async def test_a_batch_whose_later_slice_loses_its_owner_answers_the_slices_already_sealed(app, pair, shop):
    """Handed over slice by slice: the owner seals the first slice, then is lost while sealing the
    second. Items without keys: the first slice's outcomes are known and must be answered; only the
    second slice's are unknown (503 seal_owner_lost each)."""
    tenant, _, outlets, principal = shop
    owner = pair.owner_of(tenant["id"])
    other = "b" if owner == "a" else "a"
    sender = pair.sealers[other]
    sender.settings = sender.settings.model_copy(update={"group_commit_max": 2})
    owning = pair.sealers[owner].router
    handle, received = owning.handler, asyncio.Event()

    async def lost_on_the_second_slice(kind, payload):  # noqa: ANN001, ANN202
        if not received.is_set():
            received.set()
            return await handle(kind, payload)
        await _crash(owning)  # the owner dies with the second slice in hand
        await asyncio.Event().wait()

    owning.handler = lost_on_the_second_slice
    requests = [_request(principal, outlets[0]["id"], reference=f"R-{i}") for i in range(3)]
    outcomes = await asyncio.wait_for(sender.seal_batch(tenant["id"], requests), 10)
    assert [getattr(o, "status", None) for o in outcomes] == [201, 201, 503]
    assert outcomes[2].code == "seal_owner_lost"


async def test_a_stopping_owner_is_not_held_by_the_answer_of_a_cancelled_request(peers_dir):
    """The sender closes its end once the last answer due is in, even when the request's caller went
    away (cancelled): the owner then stops at once, not after its whole grace."""
    owner, sender, release, received = await _slow_owner_and_sender(peers_dir)
    call = asyncio.create_task(sender.call("owner.sock", "seal", 1))
    await asyncio.wait_for(received.wait(), 5)
    call.cancel()  # the client went away; the owner still seals and answers
    stopping = asyncio.create_task(owner.close(grace=10))
    await _retiring(sender.peers["owner.sock"])
    release.set()
    await asyncio.wait_for(stopping, 3)
    await sender.close()
