"""Deliveries to a real receiver on loopback, on SQLite and PostgreSQL, with a clock the tests drive.

Signatures are checked with the PyPI ``standardwebhooks`` library, never with our own code.
"""
from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from standardwebhooks.webhooks import WebhookVerificationError

from sqlalchemy import update

from stalela.outbox.dispatcher import Dispatcher
from stalela.tenancy.context import bind_tenant
from stalela.webhooks.models import WebhookEndpoint
from stalela.outbox.registry import Event
from stalela.webhooks import tasks
from stalela.webhooks.delivery import SCHEDULE
from stalela.webhooks.transport import BODY_KEPT, TLS_CERTIFICATE, UNREACHABLE, close_pools, post

# Delivery logic that does not depend on the database runs on SQLite only; the rest on both.
sqlite_only = pytest.mark.parametrize("hooks_database_url", ["sqlite"], indirect=True)
SEALED = {"invoice_id": "inv_x", "outlet_id": "out_x", "fiscal_number": "A-1", "type": "FV", "total": "10.00",
          "issued_at": "2026-01-01T00:00:00.000Z", "buyer": {"name": "Jane Doe", "tax_id": "P123"}}


def _at(value: str):  # noqa: ANN202
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@sqlite_only
async def test_a_sealed_invoice_arrives_signed_per_the_standard(world, receiver):
    endpoint = await world.endpoint("/hook")
    assert endpoint["secret"].startswith("whsec_")
    invoice = await world.seal()
    await world.pump()
    [request] = receiver.at("/hook")
    body = request.verify(endpoint["secret"])  # the PyPI library: signature and timestamp tolerance
    assert body["type"] == "invoice.sealed" and body["timestamp"].endswith("Z")
    assert body["data"] == {"invoice_id": invoice["id"], "outlet_id": invoice["outlet_id"],
                            "fiscal_number": invoice["fiscal_number"], "type": "FV",
                            "total": invoice["seal"]["payload"]["total"],
                            "issued_at": invoice["seal"]["payload"]["issued_at"]}
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-signature"].startswith("v1,") and " " not in request.headers["webhook-signature"]
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
    with pytest.raises(WebhookVerificationError):
        request.verify("whsec_" + "A" * 44)
    [message] = await world.messages(endpoint)
    assert message["id"] == request.id and message["status"] == "delivered" and message["attempts"] == 1
    assert message["payload"] == body and message["next_attempt_at"] is None
    [attempt] = await world.attempts(endpoint, message["id"])
    assert attempt["outcome"] == "succeeded" and attempt["status_code"] == 200 and attempt["response_body"] == "ok"
    assert attempt["latency_ms"] >= 0
    # The authority's acknowledgement names the invoice only; the event also gives its number and outlet.
    await world.emit("invoice.acknowledged", {"invoice_id": invoice["id"], "authority_code": "DGI-1",
                                              "counters": "1/1 FV"})
    await world.pump()
    acked = receiver.at("/hook")[-1].verify(endpoint["secret"])
    assert acked["type"] == "invoice.acknowledged" and acked["data"] == {
        "invoice_id": invoice["id"], "outlet_id": invoice["outlet_id"], "fiscal_number": invoice["fiscal_number"],
        "status": "acknowledged", "authority_code": "DGI-1", "counters": "1/1 FV"}
    # The secret is shown once and stored encrypted.
    again = (await world.api("GET", f"/v1/webhook-endpoints/{endpoint['id']}")).json()
    assert "secret" not in again
    assert endpoint["secret"] not in (await world.api("GET", "/v1/webhook-endpoints")).text
    assert endpoint["secret"].encode() not in repr(world.receiver.requests).encode()


async def test_three_failures_then_success_is_delivered_once_after_four_attempts(world, receiver, clock):
    receiver.answer("/flaky", 500, (503, {}, b"busy"), 502)  # then 200
    endpoint = await world.endpoint("/flaky")
    await world.emit("invoice.sealed", SEALED)
    await world.pump()
    assert len(receiver.at("/flaky")) == 1
    assert (await world.api("GET", f"/v1/webhook-endpoints/{endpoint['id']}")).json()["failing_since"]
    for n, delay in enumerate(SCHEDULE[1:4], start=2):
        clock.advance(seconds=delay * 0.85)  # the schedule's jitter is +-10 %: not yet due
        await world.pump()
        assert len(receiver.at("/flaky")) == n - 1
        clock.advance(seconds=delay * 0.3)
        await world.pump()
        assert len(receiver.at("/flaky")) == n
    requests = receiver.at("/flaky")
    assert len({r.id for r in requests}) == 1  # webhook-id is stable across retries
    for r in requests:
        r.verify(endpoint["secret"])
    [message] = await world.messages(endpoint)
    assert message["status"] == "delivered" and message["attempts"] == 4 and message["last_status_code"] == 200
    attempts = await world.attempts(endpoint, message["id"])
    assert [(a["attempt"], a["outcome"], a["status_code"]) for a in attempts] == [
        (1, "failed", 500), (2, "failed", 503), (3, "failed", 502), (4, "succeeded", 200)]
    assert attempts[1]["response_body"] == "busy" and attempts[0]["error"] == "HTTP 500"
    starts = [_at(a["started_at"]) for a in attempts]
    for gap, delay in zip([b - a for a, b in zip(starts, starts[1:])], SCHEDULE[1:4]):
        assert delay * 0.85 <= gap.total_seconds() <= delay * 1.2
    assert (await world.api("GET", f"/v1/webhook-endpoints/{endpoint['id']}")).json()["failing_since"] is None
    clock.advance(days=2)
    await world.pump()
    assert len(receiver.at("/flaky")) == 4  # delivered exactly once: nothing more is sent


async def test_410_disables_the_endpoint_and_tells_the_others(world, receiver):
    receiver.answer("/gone", default=410)
    gone = await world.endpoint("/gone")
    watcher = await world.endpoint("/watch", event_types=["endpoint.disabled"])
    await world.emit("invoice.sealed", SEALED, count=3)
    await world.pump(6)
    assert 1 <= len(receiver.at("/gone")) <= 3
    state = (await world.api("GET", f"/v1/webhook-endpoints/{gone['id']}")).json()
    assert state["enabled"] is False and state["disabled_reason"] == "gone" and state["disabled_at"]
    assert {m["status"] for m in await world.messages(gone)} == {"failed"}
    [notice] = receiver.at("/watch")  # one notice, and no invoice events (filtered out)
    body = notice.verify(watcher["secret"])
    assert body["type"] == "endpoint.disabled"
    assert body["data"]["endpoint_id"] == gone["id"] and body["data"]["reason"] == "gone"
    await world.emit("invoice.sealed", SEALED)
    await world.pump()
    assert len(receiver.at("/gone")) <= 3 and len(await world.messages(gone)) == 3  # nothing new for it


async def test_an_endpoint_failing_for_five_days_is_disabled(world, receiver, clock):
    receiver.answer("/sick", default=500)
    sick = await world.endpoint("/sick")
    watcher = await world.endpoint("/watch", event_types=["endpoint.disabled"])
    await world.emit("invoice.sealed", SEALED)
    await world.pump()
    clock.advance(days=4)
    await world.emit("invoice.sealed", SEALED)
    await world.pump()
    assert (await world.api("GET", f"/v1/webhook-endpoints/{sick['id']}")).json()["enabled"] is True
    clock.advance(days=1, seconds=10)  # the second message's retry fails 5 days after the first failure
    await world.pump(6)
    state = (await world.api("GET", f"/v1/webhook-endpoints/{sick['id']}")).json()
    assert state["enabled"] is False and state["disabled_reason"] == "failing"
    [notice] = receiver.at("/watch")
    assert notice.verify(watcher["secret"])["data"]["reason"] == "failing"
    assert {m["status"] for m in await world.messages(sick)} == {"failed"}


@sqlite_only
async def test_429_and_503_honour_retry_after_and_redirects_are_not_followed(world, receiver, clock):
    receiver.answer("/limited", (429, {"Retry-After": "120"}))
    receiver.answer("/moved", (302, {"Location": receiver.url("/elsewhere")}))
    limited, moved = await world.endpoint("/limited"), await world.endpoint("/moved")
    await world.emit("invoice.sealed", SEALED)
    await world.pump()
    [message] = await world.messages(limited)
    assert _at(message["next_attempt_at"]) == clock.now() + timedelta(seconds=120)
    [redirected] = await world.messages(moved)
    assert redirected["status"] == "pending" and redirected["last_status_code"] == 302
    assert "redirects are not followed" in redirected["last_error"] and receiver.at("/elsewhere") == []
    clock.advance(seconds=119)
    await world.pump()
    assert len(receiver.at("/limited")) == 1
    clock.advance(seconds=2)
    await world.pump()
    assert len(receiver.at("/limited")) == 2 and (await world.messages(limited))[0]["status"] == "delivered"


@sqlite_only
async def test_private_addresses_are_refused_when_delivering(world, receiver):
    """Saved while private addresses were allowed; sent by a worker where they are not: refused at connect."""
    endpoint = await world.endpoint("/ssrf")
    endpoint = (await world.api("PATCH", f"/v1/webhook-endpoints/{endpoint['id']}",
                                json={"url": f"https://2130706433:{receiver.port}/ssrf"})).json()  # 127.0.0.1
    strict = world.settings.model_copy(update={"webhooks_allow_private": False})
    await world.emit("invoice.sealed", SEALED)
    await world.pump(dispatcher=Dispatcher(world.db, strict))
    assert receiver.at("/ssrf") == []
    [message] = await world.messages(endpoint)
    [attempt] = await world.attempts(endpoint, message["id"])
    assert attempt["outcome"] == "failed" and attempt["status_code"] is None
    # The tenant sees the one fixed text of a delivery without an HTTP answer: no name, address or port.
    assert attempt["error"] == UNREACHABLE.format(timeout=world.settings.webhooks_timeout_seconds), attempt
    assert message["last_error"] == attempt["error"]


def _self_signed(tmp_path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return context


async def test_failures_without_an_answer_read_the_same_and_name_no_address(tmp_path):
    """Refused, silent (timed out), refused by the guard, unresolvable: one text, so a webhook URL
    probes no network. The exact cause goes to the server log (``Answer.detail``). A certificate that
    does not verify on the receiver's endpoint is told apart (docs/security.md says why)."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # the kernel accepts; nobody ever answers
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    ports = [silent.getsockname()[1], closed.getsockname()[1]]

    async def handshake_only(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    tls = await asyncio.start_server(handshake_only, "127.0.0.1", 0, ssl=_self_signed(tmp_path))
    tls_port = tls.sockets[0].getsockname()[1]
    try:
        answers = [await post(url, {}, b"{}", timeout=0.5, allow_private=lax) for url, lax in (
            (f"http://127.0.0.1:{ports[0]}/h", True), (f"http://127.0.0.1:{ports[1]}/h", True),
            # names that pass the URL rules and resolve to 127.0.0.1: refused by the guard at connect time
            (f"https://2130706433:{ports[1]}/h", False), (f"https://0x7f.0.0.1:{ports[1]}/h", False),
            ("https://no-such-host.invalid/h", False))]
        certificate = await post(f"https://localhost:{tls_port}/h", {}, b"{}", timeout=2, allow_private=True)
    finally:
        silent.close()
        closed.close()
        tls.close()
        await close_pools()
    assert {a.error for a in answers} == {UNREACHABLE.format(timeout=0.5)}, [a.error for a in answers]
    assert all(a.status is None and a.detail for a in answers)
    for leak in ("127.0.0.1", "localhost", "invalid", str(ports[0]), str(ports[1]), "refused", "timed out",
                 "non-public", "resolve"):
        assert leak not in answers[0].error.lower()
    assert "non-public" in answers[2].detail and "127.0.0.1" in answers[2].detail  # the log keeps the cause
    assert certificate.error == TLS_CERTIFICATE and "CERTIFICATE_VERIFY_FAILED" in certificate.detail
    assert str(tls_port) not in certificate.error and "localhost" not in certificate.error


@sqlite_only
async def test_urls_saved_before_a_rule_existed_fail_closed(world, receiver):
    """Rows saved before the guard (put there directly, as an old database has them): credentials in
    the URL, or plain http where the development setting is off. Nothing is sent; the attempt says why."""
    with_credentials, plain = await world.endpoint("/creds"), await world.endpoint("/plain")
    urls = {with_credentials["id"]: f"https://user:pw@127.0.0.1:{receiver.port}/creds",
            plain["id"]: "http://hooks.example/plain"}
    async with world.db.transaction() as session:
        await bind_tenant(session, world.tenant_id)
        for endpoint_id, url in urls.items():
            await session.execute(update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id).values(url=url))
    strict = world.settings.model_copy(update={"webhooks_allow_private": False})
    await world.emit("invoice.sealed", SEALED)
    await world.pump(dispatcher=Dispatcher(world.db, strict))
    assert receiver.at("/creds") == []
    for endpoint, reason in ((with_credentials, "must not carry credentials"), (plain, "must use https")):
        [message] = await world.messages(endpoint)
        [attempt] = await world.attempts(endpoint, message["id"])
        assert attempt["status_code"] is None and attempt["error"].startswith("URL refused, nothing was sent"), attempt
        assert reason in attempt["error"] and "pw" not in attempt["error"]


@sqlite_only
async def test_secret_rotation_signs_with_both_secrets_during_the_grace_period(world, receiver, clock):
    endpoint = await world.endpoint("/rot")
    r = await world.api("POST", f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret")
    assert r.status_code == 200, r.text
    rotated = r.json()
    assert rotated["secret"] != endpoint["secret"]
    assert _at(rotated["previous_secret_expires_at"]) == clock.now() + timedelta(days=1)
    await world.emit("invoice.sealed", SEALED)
    await world.pump()
    [during] = receiver.at("/rot")
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    during.verify(endpoint["secret"])  # receivers still on the old secret keep working
    during.verify(rotated["secret"])
    clock.advance(days=1, seconds=1)
    await world.emit("invoice.sealed", SEALED)
    await world.pump()
    after = receiver.at("/rot")[-1]
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    after.verify(rotated["secret"])
    with pytest.raises(WebhookVerificationError):
        after.verify(endpoint["secret"])


async def test_failed_messages_can_be_retried_and_recovered(world, receiver, clock):
    receiver.answer("/down", default=500)
    endpoint = await world.endpoint("/down")
    await world.emit("invoice.sealed", SEALED, count=2)
    await world.pump()
    for delay in SCHEDULE[1:]:
        clock.advance(seconds=delay * 1.15)
        await world.pump(2)
    assert len(receiver.at("/down")) == 2 * len(SCHEDULE)
    failed = await world.messages(endpoint, status="failed")
    assert len(failed) == 2 and all(m["attempts"] == len(SCHEDULE) for m in failed)
    receiver.answer("/down", default=200)
    first, second = failed
    r = await world.api("POST", f"/v1/webhook-endpoints/{endpoint['id']}/messages/{first['id']}/retry")
    assert r.status_code == 200 and r.json()["status"] == "pending"
    await world.pump()
    assert len(receiver.at("/down")) == 2 * len(SCHEDULE) + 1 and receiver.at("/down")[-1].id == first["id"]
    assert len(await world.attempts(endpoint, first["id"])) == len(SCHEDULE) + 1
    window = {"since": (clock.now() - timedelta(days=7)).isoformat(), "until": clock.now().isoformat()}
    r = await world.api("POST", f"/v1/webhook-endpoints/{endpoint['id']}/recover", json=window)
    assert r.json() == {"recovered": 1, "has_more": False}
    await world.pump()
    assert len(receiver.at("/down")) == 2 * len(SCHEDULE) + 2 and receiver.at("/down")[-1].id == second["id"]
    assert {m["status"] for m in await world.messages(endpoint)} == {"delivered"}
    r = await world.api("POST", f"/v1/webhook-endpoints/{endpoint['id']}/recover", json=window)
    assert r.json() == {"recovered": 0, "has_more": False}


async def test_a_slow_endpoint_does_not_starve_the_others(world, receiver):
    hold = threading.Event()
    receiver.answer("/slow", hold=hold)
    slow, fast = await world.endpoint("/slow"), await world.endpoint("/fast")
    limited = world.settings.model_copy(update={"webhooks_endpoint_concurrency": 2})
    dispatcher = Dispatcher(world.db, limited)
    await world.emit("invoice.sealed", SEALED, count=10)
    started = time.monotonic()
    while len(receiver.at("/fast")) < 10 and time.monotonic() - started < 15:
        await world.pump(1, dispatcher=dispatcher, settle=False)
    took = time.monotonic() - started
    try:
        assert len({r.id for r in receiver.at("/fast")}) == 10
        assert took < 4.0, f"the fast endpoint waited {took:.1f} s behind the slow one"
        assert receiver.max_in_flight["/slow"] == 2  # its concurrency limit, not more
    finally:
        hold.set()
    for _ in range(20):
        await world.pump(1, dispatcher=dispatcher)
        if len({r.id for r in receiver.at("/slow")}) == 10:
            break
    assert len({r.id for r in receiver.at("/slow")}) == 10 and receiver.max_in_flight["/slow"] == 2
    assert {m["status"] for m in await world.messages(slow)} == {"delivered"}
    assert len(await world.messages(fast)) == 10


async def test_fan_out_is_idempotent_and_follows_filters(world, receiver):
    everything = await world.endpoint("/all")
    acks_only = await world.endpoint("/acks", event_types=["invoice.acknowledged"])
    switched_off = await world.endpoint("/off", enabled=False)
    [event_id] = await world.emit("invoice.sealed", SEALED)
    event = Event(world.tenant_id, event_id, "invoice.sealed", SEALED, 1)
    ctx = world.dispatcher.context
    await tasks.fan_out(ctx, event)
    await tasks.fan_out(ctx, event)  # the outbox delivers at least once: a second run adds nothing
    await world.pump()
    assert [m.endpoint_id for m in await world.stored()] == [everything["id"]]
    [request] = receiver.at("/all")
    assert "buyer" not in request.verify(everything["secret"])["data"]  # never the buyer's details
    assert receiver.at("/acks") == [] and receiver.at("/off") == [] and acks_only and switched_off


@sqlite_only
async def test_test_events_and_capped_answers(world, receiver):
    receiver.answer("/big", default=(200, {}, b"x" * 10_000))
    endpoint = await world.endpoint("/big", event_types=["report.z_closed"])
    r = await world.api("POST", f"/v1/webhook-endpoints/{endpoint['id']}/test")
    assert r.status_code == 201 and r.json()["event_type"] == "webhook.test" and r.json()["status"] == "pending"
    await world.pump()
    [request] = receiver.at("/big")
    body = request.verify(endpoint["secret"])
    assert body["type"] == "webhook.test" and body["data"]["endpoint_id"] == endpoint["id"]
    [attempt] = await world.attempts(endpoint, r.json()["id"])
    assert attempt["outcome"] == "succeeded" and len(attempt["response_body"]) == BODY_KEPT
    z = {"z_report_id": "zr_1", "outlet_id": "out_1", "business_day": "2026-11-22", "z_counter": 3,
         "number": "MAIN-Z-00003", "invoices": 12, "total": "1500.00", "closed_at": "2026-11-22T22:00:00.000Z",
         "closed_by": "user:usr_1", "seal_hash": "ab" * 32}
    await world.emit("report.z_closed", z)
    await world.pump()
    closed = receiver.at("/big")[-1].verify(endpoint["secret"])
    assert closed["type"] == "report.z_closed" and closed["data"] == {k: v for k, v in z.items() if k != "closed_by"}
