"""Uploads against a small real HTTP server on loopback that drops connections, answers 503, holds
invoices or reports a fork: the sealer retries the same body, journals each receipt, stops at a hold."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.sdk.offline_support import Cloud, request

from stalela_sdk.offline import FileKey, ForkDetected, OfflineSealer  # noqa: E402
from stalela_sdk.offline.transport import Transport  # noqa: E402


class FakeCloud(ThreadingHTTPServer):
    """``script``: what each successive batch request gets: "drop", "503", "held:<n>" (merged up to the
    n-th, held after), "fork", or "ok"."""

    def __init__(self, script: list[str]) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.script, self.bodies = list(script), []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):  # noqa: N802
        server: FakeCloud = self.server  # type: ignore[assignment]
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        server.bodies.append(body)
        step = server.script.pop(0) if server.script else "ok"
        if step == "drop":
            self.connection.close()  # the request reached the cloud, the answer is lost
            return
        if step == "503":
            return self._send(503, {"code": "unavailable"})
        if step == "fork":
            return self._send(409, {"code": "offline_number_reused", "fork_proof": {"id": "frk_1"}})
        held_from = int(step.split(":")[1]) if step.startswith("held:") else len(body["invoices"])
        receipts = [{"counter": inv["seal"]["payload"]["counter"], "outcome": "merged" if i < held_from else "held"}
                    for i, inv in enumerate(body["invoices"])]
        return self._send(200, {"object": "offline_batch", "receipts": receipts})

    def _send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def fake():
    servers = []

    def start(script):
        server = FakeCloud(script)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server
    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def _sealer(tmp_path, url, n):
    cloud, key = Cloud(), FileKey.create(tmp_path / "k.pem")
    sealer = OfflineSealer(tmp_path / "j.db", key, transport=Transport(url, "sk_test", backoff=0.01))
    sealer.use_credential(cloud.credential(key.public_jwk()), cloud.jwks)
    for i in range(n):
        sealer.seal(request(i))
    return sealer


def test_retries_send_the_same_body_and_receipts_are_journalled(tmp_path, fake):
    server = fake(["drop", "503", "ok", "ok", "ok"])
    sealer = _sealer(tmp_path, server.url, 25)
    assert sealer.upload(batch_size=10) == {"merged": 25}
    assert server.bodies[0] == server.bodies[1] == server.bodies[2]  # the lost answer: the very batch again
    assert [len(b["invoices"]) for b in server.bodies] == [10, 10, 10, 10, 5]
    counters = [inv["seal"]["payload"]["counter"] for b in server.bodies[2:] for inv in b["invoices"]]
    assert counters == list(range(1, 26))  # in device order
    assert all("buyer_salt" not in inv for b in server.bodies for inv in b["invoices"])
    assert sealer.status()["invoices"] == {"merged": 25}
    assert sealer.upload() == {}


def test_a_hold_stops_the_upload_and_the_held_go_again(tmp_path, fake):
    server = fake(["held:3"])
    sealer = _sealer(tmp_path, server.url, 8)
    assert sealer.upload(batch_size=5) == {"merged": 3, "held": 2}
    assert len(server.bodies) == 1  # nothing after a hold
    assert sealer.upload(batch_size=5) == {"merged": 5}
    assert [inv["seal"]["payload"]["counter"] for inv in server.bodies[1]["invoices"]] == [4, 5, 6, 7, 8]


def test_a_fork_is_reported(tmp_path, fake):
    server = fake(["fork"])
    sealer = _sealer(tmp_path, server.url, 2)
    with pytest.raises(ForkDetected) as fork:
        sealer.upload()
    assert fork.value.answer["fork_proof"]["id"] == "frk_1"
    assert sealer.status()["invoices"] == {"sealed": 2}
