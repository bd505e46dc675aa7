"""A full flow against a real server (2 workers, DEBUG logs, in-process sync agent, DGI simulator,
a webhook receiver) with planted secrets: not one of them may appear in any log line or in /metrics.
Also: every line is JSON, outbox work carries its correlation ids, and the authority series move."""
from __future__ import annotations

import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.observability.test_metrics import scrape_text, value
from tests.support.invoices import sample_invoice
from tests.support.server import start_server
from tests.support.simulator import start_simulator

pytestmark = pytest.mark.e2e

OPERATOR = "op-token-PLANTED-91c2e5a7"
METRICS = "metrics-token-PLANTED-44ab19"
MASTER_KEY = secrets.token_hex(32)
PIN = "PIN-PLANTED-8812"
DEVICE_TOKEN = "dgi-device-token-PLANTED-7f3a9c"
WRONG_DEVICE_TOKEN = "dgi-wrong-token-PLANTED-0b1d"
BUYER_NAME = "Planted Buyer Nkosi Zq9"
BUYER_TAX_ID = "NIFPLANTED77"
BOGUS_KEY = "sk_PLANTEDbogus0000000000000000000"


class Receiver:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                receiver.bodies.append(self.rfile.read(int(self.headers.get("content-length", 0))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:  # noqa: ANN002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/stalela"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_no_secret_or_buyer_data_reaches_the_logs(tmp_path):
    sim = start_simulator({"SECNIM1": DEVICE_TOKEN, "SECNIM2": "the-right-token-for-nim2"})
    receiver = Receiver()
    server = start_server({
        "STALELA_OPERATOR_TOKEN": OPERATOR, "STALELA_METRICS_TOKEN": METRICS, "STALELA_MASTER_KEY": MASTER_KEY,
        "STALELA_PKCS11_PIN": PIN, "STALELA_LOG_LEVEL": "DEBUG", "STALELA_OUTBOX_POLL_SECONDS": "0.1",
        "STALELA_OUTBOX_BACKOFF_BASE_SECONDS": "0.05", "STALELA_OUTBOX_BACKOFF_CAP_SECONDS": "0.2",
        "STALELA_AUTHORITY_TIMEOUT_SECONDS": "5", "STALELA_WEBHOOKS_ALLOW_PRIVATE": "true",
        "STALELA_METRICS_CACHE_SECONDS": "0",
    }, tmp_path / "var", workers=2)
    planted = [OPERATOR, METRICS, MASTER_KEY, PIN, DEVICE_TOKEN, WRONG_DEVICE_TOKEN, BUYER_NAME, BUYER_TAX_ID,
               BOGUS_KEY]
    try:
        with httpx.Client(base_url=server.base_url, timeout=30) as c:
            op = {"Authorization": f"Bearer {OPERATOR}"}
            r = c.post("/v1/tenants", json={"name": "Secret SARL", "tax_id": "SEC1"}, headers=op)
            assert r.status_code == 201, r.text
            api_key = r.json()["api_key"]
            tenant_id = r.json()["tenant"]["id"]
            planted.append(api_key)
            key = {"Authorization": f"Bearer {api_key}"}
            outlet = c.post("/v1/outlets", json={"code": "SC1", "name": "S"}, headers=key).json()
            other = c.post("/v1/outlets", json={"code": "SC2", "name": "S2"}, headers=key).json()
            r = c.post("/v1/api-keys", json={"name": "till", "outlet_id": outlet["id"]}, headers=key)
            if r.status_code == 201:
                planted.append(r.json()["api_key"])
            hook = c.post("/v1/webhook-endpoints", json={"url": receiver.url}, headers=key)
            if hook.status_code == 201:
                planted.append(hook.json()["secret"])
            for outlet_id, nim, token in ((outlet["id"], "SECNIM1", DEVICE_TOKEN),
                                          (other["id"], "SECNIM2", WRONG_DEVICE_TOKEN)):
                r = c.put(f"/v1/outlets/{outlet_id}/authority-device",
                          json={"nim": nim, "base_url": sim.url, "token": token}, headers=key)
                assert r.status_code == 200 and token not in r.text
            buyer = {"type": "PM", "name": BUYER_NAME, "tax_id": BUYER_TAX_ID}
            sealed = []
            for outlet_id in (outlet["id"], outlet["id"], outlet["id"], other["id"]):
                r = c.post("/v1/invoices", json=sample_invoice(outlet_id, buyer=buyer), headers=key)
                assert r.status_code == 201, r.text
                sealed.append(r.json())
            # Refusals and errors that carry the secrets in what the client sent.
            assert c.get("/v1/outlets", headers={"Authorization": f"Bearer {BOGUS_KEY}"}).status_code == 401
            assert c.get("/v1/tenants", headers={"Authorization": f"Bearer {OPERATOR}x"}).status_code == 401
            bad = sample_invoice(outlet["id"], buyer={"type": "PM", "name": BUYER_NAME})  # no tax id: 422
            assert c.post("/v1/invoices", json=bad, headers=key).status_code == 422
            r = c.post("/v1/invoices", content=b'{"buyer": {"name": "' + BUYER_NAME.encode() + b'"', headers=key
                       | {"content-type": "application/json"})
            assert r.status_code == 400
            c.get(f"/v1/invoices?fiscal_number={BUYER_TAX_ID}", headers=key)
            c.get(f"/nope/{BOGUS_KEY}")

            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                syncs = [c.get(f"/v1/invoices/{inv['id']}", headers=key).json()["sync"] for inv in sealed]
                if [s["status"] for s in syncs[:3]] == ["acknowledged"] * 3 and syncs[3]["error"]:
                    break
                time.sleep(0.3)
            assert [s["status"] for s in syncs[:3]] == ["acknowledged"] * 3, syncs
            assert syncs[3]["error"]["code"] == "device_unauthorized", syncs[3]
            metrics_text = c.get("/metrics", headers={"Authorization": f"Bearer {METRICS}"}).text
            deadline = time.monotonic() + 20
            while hook.status_code == 201 and not receiver.bodies and time.monotonic() < deadline:
                time.sleep(0.2)
            metrics_text = c.get("/metrics", headers={"Authorization": f"Bearer {METRICS}"}).text
    finally:
        server.stop()
        sim.stop()
        receiver.server.shutdown()

    log_text = server.log_path.read_text()
    for secret in planted:
        assert secret not in log_text, f"{secret[:12]}... leaked into the logs"
        assert secret not in metrics_text, f"{secret[:12]}... leaked into /metrics"
    lines = []
    for raw in log_text.splitlines():
        if raw.strip():
            line = json.loads(raw)  # every line, uvicorn's included, is JSON
            assert {"timestamp", "level", "event"} <= set(line), line
            lines.append(line)
    assert any(line.get("level") == "debug" for line in lines)
    # Outbox work logs with its correlation ids (here: httpx's line for each call to the DGI).
    calls = [line for line in lines if str(line.get("event", "")).startswith("HTTP Request:") and sim.url in line["event"]]
    assert calls and all(line.get("tenant_id") == tenant_id and line.get("event_id") for line in calls)
    assert {line.get("invoice_id") for line in calls} >= {inv["id"] for inv in sealed[:3]}

    scraped = scrape_text(metrics_text)
    assert value(scraped, "authority_requests_total", operation="create", result="ok") >= 3
    assert value(scraped, "authority_requests_total", operation="confirm", result="ok") >= 3
    assert value(scraped, "authority_requests_total", result="unauthorized") >= 1
    assert value(scraped, "authority_sync_lag_seconds_count") == 3
    assert value(scraped, "authority_sync_pending", status="pending") == 1
    if hook.status_code == 201:
        assert receiver.bodies and value(scraped, "webhook_deliveries_total", result="ok") >= 1
