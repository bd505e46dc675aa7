"""The SDK against a real ``stalela serve`` on loopback (SQLite), sync and async.

One server for the module (starting one is the slow part); each test makes its own outlet so none
depends on another's invoices. Faults (503, 429, a lost answer, a refused connection) come from a real
HTTP proxy on loopback (tests/support/faultproxy.py), not from a mock transport.
"""
from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from stalela_sdk import (APIConnectionError, AsyncStalela, AuthenticationError, Conflict, NotFound,
                         PermissionDenied, RateLimited, RetryPolicy, ServerError, Stalela, ValidationError, Webhook,
                         verify_checkpoint, verify_consistency, verify_inclusion, verify_invoice, verify_sealed)
from tests.conftest import OPERATOR_TOKEN
from tests.support.faultproxy import FaultProxy
from tests.support.invoices import sample_invoice
from tests.support.server import free_port, start_server

pytestmark = pytest.mark.e2e

FAST = RetryPolicy(max_retries=3, initial_delay=0.01, max_delay=0.05)


class Receiver:
    """A webhook receiver on loopback: keeps each delivery's raw body and headers."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[bytes, dict[str, str]]] = []
        received = self.deliveries

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                received.append((body, {k.lower(): v for k, v in self.headers.items()}))
                self.send_response(204)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def wait(self, event_type: str, timeout: float = 20) -> tuple[bytes, dict[str, str]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for body, headers in list(self.deliveries):
                if json.loads(body).get("type") == event_type:
                    return body, headers
            time.sleep(0.1)
        raise AssertionError(f"no {event_type} delivery within {timeout} s")


@pytest.fixture(scope="module")
def live(tmp_path_factory, _sqlite_url):
    server = start_server({"STALELA_DATABASE_URL": _sqlite_url, "STALELA_OPERATOR_TOKEN": OPERATOR_TOKEN,
                           "STALELA_WEBHOOKS_ALLOW_PRIVATE": "true"}, tmp_path_factory.mktemp("sdk-live"))
    proxy = FaultProxy(server.base_url).start()
    receiver = Receiver()
    try:
        with Stalela(OPERATOR_TOKEN, base_url=server.base_url) as operator:
            tenant = operator.tenants.create(name="SDK SARL", tax_id=f"SDK{uuid.uuid4().hex[:8]}")
        yield {"server": server, "proxy": proxy, "receiver": receiver, "key": tenant["api_key"],
               "tenant_id": tenant["tenant"]["id"]}
    finally:
        receiver.server.shutdown()
        proxy.stop()
        server.stop()


@pytest.fixture
def client(live):
    with Stalela(live["key"], base_url=live["server"].base_url, retry=FAST) as c:
        yield c


def _outlet(client: Stalela) -> dict:
    return client.outlets.create(code=f"O{uuid.uuid4().hex[:10]}", name="Boutique")


def test_invoices_seal_read_list_pdf_credit_note_and_verify(client, live):
    outlet = _outlet(client)
    jwks = client.keys.jwks()
    sealed = [client.invoices.create(sample_invoice(outlet["id"], reference=f"R{i}")) for i in range(5)]
    assert [i["counter"] for i in sealed] == [1, 2, 3, 4, 5]
    for inv in sealed:
        assert verify_invoice(inv, jwks, tenant_id=live["tenant_id"])
        assert client.invoices.get(inv["id"])["seal"]["hash"] == inv["seal"]["hash"]

    # Pagination: pages of 2 with starting_after cursors, all five, newest first, none twice.
    page = client.invoices.list(outlet_id=outlet["id"], limit=2)
    assert len(page["data"]) == 2 and page["has_more"]
    every = list(client.invoices.list_all(outlet_id=outlet["id"], limit=2))
    assert [i["id"] for i in every] == [i["id"] for i in reversed(sealed)]

    note = client.invoices.credit_note(outlet_id=outlet["id"], original=sealed[0]["fiscal_number"], nature="COR",
                                       lines=[sample_invoice(outlet["id"])["lines"][1]])
    assert note["type"] == "FA" and note["original"] == sealed[0]["fiscal_number"]
    assert verify_invoice(note, jwks)
    assert client.invoices.pdf(sealed[0]["id"]).startswith(b"%PDF")
    assert client.invoices.pdf(sealed[0]["id"], layout="receipt", lang="es").startswith(b"%PDF")

    # A changed amount or line, or another tenant's expectation, does not verify.
    tampered = json.loads(json.dumps(sealed[1]))
    tampered["totals"]["total"] = "1.00"
    assert verify_invoice(tampered, jwks).code == "document_altered"
    tampered = json.loads(json.dumps(sealed[1]))
    tampered["lines"][0]["quantity"] = "20"
    assert verify_invoice(tampered, jwks).code == "lines_altered"
    tampered = json.loads(json.dumps(sealed[1]))
    tampered["seal"]["payload"]["total"] = "1.00"
    assert verify_invoice(tampered, jwks).code == "seal_invalid"
    assert verify_invoice(sealed[1], jwks, tenant_id="ten_other").code == "wrong_tenant"
    assert verify_invoice(sealed[1], {"keys": []}).code == "key_unknown"


def test_batch_generates_item_keys_so_a_retried_batch_replays(client):
    outlet = _outlet(client)
    items = [{"invoice": sample_invoice(outlet["id"]), "idempotency_key": f"b-{uuid.uuid4()}"},
             sample_invoice(outlet["id"], type="XX")]
    first = client.invoices.batch(items)
    assert (first["sealed"], first["rejected"]) == (1, 1)
    assert first["data"][1]["problem"]["code"] == "invalid_invoice_type"
    again = client.invoices.batch(items[:1])
    assert again["data"][0]["replayed"] is True
    assert again["data"][0]["invoice"]["id"] == first["data"][0]["invoice"]["id"]


def test_typed_errors_from_problem_json(client, live):
    outlet = _outlet(client)
    with pytest.raises(ValidationError) as exc:
        client.invoices.create(sample_invoice(outlet["id"], type="XX"))
    assert (exc.value.status, exc.value.code, exc.value.field) == (422, "invalid_invoice_type", "type")
    assert exc.value.request_id and exc.value.errors
    with pytest.raises(NotFound) as exc:
        client.invoices.get("inv_00000000000000000000000000")
    assert exc.value.code == "invoice_not_found"
    client.invoices.create(sample_invoice(outlet["id"], reference="dup-1"))
    with pytest.raises(Conflict) as exc:
        client.invoices.create(sample_invoice(outlet["id"], reference="dup-1"))
    assert exc.value.code == "reference_already_used"
    till = client.api_keys.create(name="till", outlet_id=outlet["id"])
    with Stalela(till["api_key"], base_url=live["server"].base_url) as restricted:
        with pytest.raises(PermissionDenied) as exc:
            restricted.outlets.create(code="NOPE", name="x")
        assert exc.value.status == 403
    with Stalela("sk_" + "a" * 52, base_url=live["server"].base_url) as stranger:
        with pytest.raises(AuthenticationError) as exc:
            stranger.outlets.list()
    assert exc.value.code == "invalid_credentials"


def test_outlets_and_api_keys(client, live):
    outlet = _outlet(client)
    assert client.outlets.get(outlet["id"])["code"] == outlet["code"]
    assert client.outlets.update(outlet["id"], name="Renamed")["name"] == "Renamed"
    assert outlet["id"] in {o["id"] for o in client.outlets.list_all(limit=1)}
    key = client.api_keys.create(name="reports", scopes=["invoices:read"])
    assert client.api_keys.get(key["id"])["prefix"]
    assert key["id"] in {k["id"] for k in client.api_keys.list_all()}
    client.api_keys.revoke(key["id"])
    with Stalela(key["api_key"], base_url=live["server"].base_url) as revoked:
        with pytest.raises(AuthenticationError):
            revoked.invoices.list()


def test_reports_and_ledger_proofs_verify_offline(client, live):
    outlet = _outlet(client)
    jwks = client.keys.jwks()
    first = client.invoices.create(sample_invoice(outlet["id"]))
    cp1 = client.ledger.create_checkpoint()
    client.invoices.create(sample_invoice(outlet["id"]))
    cp2 = client.ledger.create_checkpoint()
    assert verify_checkpoint(cp2, jwks, tenant_id=live["tenant_id"])
    assert client.ledger.latest_checkpoint()["tree_size"] >= cp2["tree_size"]
    assert cp1["id"] in {c["id"] for c in client.ledger.checkpoints_all(max_tree_size=cp1["tree_size"])}

    proof = client.invoices.proof(first["id"], tree_size=cp2["tree_size"])
    assert verify_inclusion(proof, first["seal"]["hash"], cp2, jwks)
    assert not verify_inclusion(proof, "0" * 64, cp2, jwks)  # another invoice's hash
    forged = {**cp2, "seal": {**cp2["seal"], "payload": {**cp2["seal"]["payload"], "root_hash": "f" * 64}},
              "root_hash": "f" * 64}
    assert verify_inclusion(proof, first["seal"]["hash"], forged, jwks).code == "checkpoint_seal_invalid"
    consistency = client.ledger.consistency_proof(cp1["tree_size"], cp2["tree_size"])
    assert verify_consistency(consistency, cp1, cp2, jwks)
    assert not verify_consistency(consistency, cp2, cp1, jwks)

    key = client.keys.get(first["seal"]["key_id"])
    assert verify_invoice(first, [key])

    z = client.reports.close_z(outlet["id"])
    assert client.reports.get_z(z["id"])["id"] == z["id"]
    assert client.reports.get_z(z["id"], format="pdf").startswith(b"%PDF")
    assert z["id"] in {r["id"] for r in client.reports.list_z_all(outlet_id=outlet["id"])}
    assert verify_sealed(z, jwks) and verify_sealed(client.reports.x(outlet["id"]), jwks)
    day = z["business_day"]
    assert isinstance(client.reports.a(from_=day, to=day), dict)
    assert isinstance(client.sync.status(), dict)


def test_webhook_endpoints_and_a_real_delivery_verifies(client, live):
    receiver = live["receiver"]
    endpoint = client.webhook_endpoints.create(url=receiver.url, event_types=["invoice.sealed"])
    secret = endpoint["secret"]
    try:
        assert client.webhook_endpoints.get(endpoint["id"])["url"] == receiver.url
        assert endpoint["id"] in {e["id"] for e in client.webhook_endpoints.list_all()}
        client.webhook_endpoints.test(endpoint["id"])
        body, headers = receiver.wait("webhook.test")
        event = Webhook(secret).verify(body, headers)
        assert event["data"]["endpoint_id"] == endpoint["id"]

        # After a rotation the delivery carries two signatures: the old and the new secret both verify.
        rotated = client.webhook_endpoints.rotate_secret(endpoint["id"])
        receiver.deliveries.clear()
        client.webhook_endpoints.test(endpoint["id"])
        body, headers = receiver.wait("webhook.test")
        assert len(headers["webhook-signature"].split(" ")) == 2
        assert Webhook(secret).verify(body, headers) == Webhook(rotated["secret"]).verify(body, headers)
        messages = list(client.webhook_endpoints.messages_all(endpoint["id"]))
        assert messages and client.webhook_endpoints.message(endpoint["id"], messages[0]["id"])["id"]
        assert isinstance(client.webhook_endpoints.attempts(endpoint["id"], messages[0]["id"])["data"], list)
        assert client.webhook_endpoints.update(endpoint["id"], enabled=False)["enabled"] is False
    finally:
        client.webhook_endpoints.delete(endpoint["id"])
    with pytest.raises(NotFound):
        client.webhook_endpoints.get(endpoint["id"])


# --- retries through the fault proxy ---------------------------------------------------------------------


@pytest.fixture
def proxied(live):
    live["proxy"].reset()
    with Stalela(live["key"], base_url=live["proxy"].base_url, retry=FAST) as c:
        yield c, live["proxy"]
    live["proxy"].reset()


def _posts(proxy: FaultProxy) -> list:
    return [s for s in proxy.seen if s.method == "POST" and s.path == "/v1/invoices"]


def test_503_then_201_reuses_the_generated_idempotency_key(proxied):
    client, proxy = proxied
    outlet = _outlet(client)
    proxy.inject(("status", 503, {"Retry-After": "0"}), ("status", 502))
    inv = client.invoices.create(sample_invoice(outlet["id"]))
    posts = _posts(proxy)
    assert [p.fault[1] if p.fault else 201 for p in posts] == [503, 502, 201]
    keys = {p.headers["idempotency-key"] for p in posts}
    assert len(keys) == 1 and keys.pop().startswith("sdk-")
    assert inv["counter"] == 1


def test_a_lost_answer_is_retried_and_replayed_not_sealed_twice(proxied):
    client, proxy = proxied
    outlet = _outlet(client)
    proxy.inject(("drop_after",))
    inv = client.invoices.create(sample_invoice(outlet["id"]), idempotency_key="order-lost-1")
    posts = _posts(proxy)
    assert len(posts) == 2 and {p.headers["idempotency-key"] for p in posts} == {"order-lost-1"}
    assert [i["id"] for i in client.invoices.list_all(outlet_id=outlet["id"])] == [inv["id"]]


def test_a_lost_answer_to_a_plain_post_is_not_retried(proxied):
    client, proxy = proxied
    proxy.inject(("drop_after",))
    with pytest.raises(APIConnectionError):
        client.outlets.create(code=f"L{uuid.uuid4().hex[:8]}", name="maybe created")
    assert len([s for s in proxy.seen if s.path == "/v1/outlets"]) == 1


def test_429_honours_retry_after_and_gives_up_typed(proxied):
    client, proxy = proxied
    proxy.inject(("status", 429, {"Retry-After": "0"}))
    assert client.outlets.list(limit=1)["data"] is not None
    proxy.inject(*[("status", 429, {"Retry-After": "0"})] * 4)
    with pytest.raises(RateLimited) as exc:
        client.outlets.list(limit=1)
    assert exc.value.retry_after == 0 and len([s for s in proxy.seen if s.fault]) == 5
    proxy.inject(*[("status", 504)] * 4)
    with pytest.raises(ServerError):
        client.outlets.list(limit=1)


def test_connection_refused_is_retried_then_typed(live):
    dead = f"http://127.0.0.1:{free_port()}"
    with Stalela(live["key"], base_url=dead, retry=FAST) as client:
        with pytest.raises(APIConnectionError):
            client.invoices.create(sample_invoice("out_x"))


# --- async ---------------------------------------------------------------------------------------------------


def test_async_client_seals_pages_retries_and_raises(live):
    async def scenario() -> None:
        proxy = live["proxy"]
        proxy.reset()
        async with AsyncStalela(live["key"], base_url=proxy.base_url, retry=FAST) as client:
            outlet = await client.outlets.create(code=f"A{uuid.uuid4().hex[:10]}", name="Async")
            jwks = await client.keys.jwks()
            proxy.inject(("status", 503, {"Retry-After": "0"}), ("drop_after",))
            sealed = await asyncio.gather(*[client.invoices.create(sample_invoice(outlet["id"])) for _ in range(4)])
            assert sorted(i["counter"] for i in sealed) == [1, 2, 3, 4]
            assert all(verify_invoice(i, jwks) for i in sealed)
            listed = [i async for i in client.invoices.list_all(outlet_id=outlet["id"], limit=3)]
            assert sorted(i["id"] for i in listed) == sorted(i["id"] for i in sealed)
            batch = await client.invoices.batch([sample_invoice(outlet["id"])])
            assert batch["sealed"] == 1
            with pytest.raises(ValidationError) as exc:
                await client.invoices.create(sample_invoice(outlet["id"], lines=[]))
            assert exc.value.status == 422
            with pytest.raises(NotFound):
                await client.outlets.get("out_00000000000000000000000000")
            cp = await client.ledger.create_checkpoint()
            proof = await client.ledger.inclusion_proof(sealed[0]["id"], tree_size=cp["tree_size"])
            assert verify_inclusion(proof, sealed[0]["seal"]["hash"], cp, jwks)
        proxy.reset()

    asyncio.run(scenario())
