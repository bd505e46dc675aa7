"""Traces: a real server exports OTLP/HTTP to a loopback receiver when OTEL_EXPORTER_OTLP_ENDPOINT is
set, continues the caller's trace, and puts the trace id in its logs; without it, nothing is loaded."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.conftest import OPERATOR_TOKEN
from tests.support.invoices import sample_invoice
from tests.support.server import start_server

pytestmark = pytest.mark.e2e
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"


class OtlpReceiver:
    """Records every OTLP/HTTP POST (protobuf ExportTraceServiceRequest) it receives."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.posts.append((self.path, dict(self.headers), body))
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:  # noqa: ANN002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def spans(self) -> list[dict]:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        out = []
        for path, _headers, body in self.posts:
            assert path == "/v1/traces"
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            for resource_spans in request.resource_spans:
                resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        attrs = {}
                        for a in span.attributes:
                            v = a.value
                            attrs[a.key] = v.string_value if v.HasField("string_value") else (
                                v.int_value if v.HasField("int_value") else v.bool_value)
                        out.append({"name": span.name, "trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
                                    "parent": span.parent_span_id.hex(), "kind": span.kind, "attributes": attrs,
                                    "start": span.start_time_unix_nano, "end": span.end_time_unix_nano,
                                    "status": span.status.code, "resource": resource})
        return out

    def stop(self) -> None:
        self.server.shutdown()


def test_spans_are_exported_and_linked_to_logs(tmp_path):
    receiver = OtlpReceiver()
    server = start_server({"STALELA_OPERATOR_TOKEN": OPERATOR_TOKEN, "STALELA_LOG_LEVEL": "INFO",
                           "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_SERVICE_NAME": "stalela-test",
                           "OTEL_BSP_SCHEDULE_DELAY": "100", "STALELA_OUTBOX_POLL_SECONDS": "0.1"}, tmp_path / "var")
    try:
        with httpx.Client(base_url=server.base_url, timeout=30) as c:
            r = c.post("/v1/tenants", json={"name": "Traced SARL", "tax_id": "T1"},
                       headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
            key = {"Authorization": f"Bearer {r.json()['api_key']}"}
            outlet = c.post("/v1/outlets", json={"code": "TR", "name": "T"}, headers=key).json()
            traceparent = {"traceparent": f"00-{TRACE_ID}-{PARENT_SPAN}-01"}
            sealed = c.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers=key | traceparent)
            assert sealed.status_code == 201
            invoice_id = sealed.json()["id"]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(s["name"].startswith("outbox ") for s in receiver.spans()):
            time.sleep(0.2)
    finally:
        server.stop()
        receiver.stop()
    spans = receiver.spans()
    (request,) = [s for s in spans if s["trace_id"] == TRACE_ID and s["name"] == "POST /v1/invoices"]
    assert request["parent"] == PARENT_SPAN and request["kind"] == 2  # SERVER
    assert request["attributes"]["http.route"] == "/v1/invoices"
    assert request["attributes"]["http.response.status_code"] == 201
    assert request["attributes"]["stalela.tenant_id"] == outlet["tenant_id"]
    assert request["attributes"]["stalela.invoice_id"] == invoice_id
    assert request["resource"]["service.name"] == "stalela-test"
    stages = sorted((s for s in spans if s["trace_id"] == TRACE_ID and s["name"].startswith("seal.")),
                    key=lambda s: s["start"])
    assert [s["name"] for s in stages] == ["seal.validate", "seal.number", "seal.sign", "seal.store"]
    assert all(s["parent"] == request["span_id"] for s in stages)
    assert all(request["start"] <= s["start"] <= s["end"] <= request["end"] for s in stages)
    handlers = [s for s in spans if s["name"] == "outbox invoice.sealed"]
    assert handlers and handlers[0]["kind"] == 5  # CONSUMER
    assert handlers[0]["attributes"]["stalela.invoice_id"] == invoice_id
    # Untraced requests still get a fresh trace of their own.
    assert any(s["name"] == "POST /v1/tenants" and s["trace_id"] != TRACE_ID for s in spans)

    lines = [json.loads(line) for line in server.log_path.read_text().splitlines() if line.startswith("{")]
    (seal_line,) = [line for line in lines if line.get("event") == "request" and line.get("endpoint") == "/v1/invoices"]
    assert seal_line["trace_id"] == TRACE_ID and seal_line["span_id"] == request["span_id"]
    assert seal_line["invoice_id"] == invoice_id and seal_line["tenant_id"] == outlet["tenant_id"]


def test_without_an_endpoint_no_tracer_provider_exists(tmp_path):
    script = f"""
import asyncio, sys, httpx
from stalela.app import create_app
from stalela.config import Settings
from stalela.observability import tracing

async def main():
    app = create_app(Settings(data_dir={str(tmp_path)!r}, demo=False, log_level="WARNING", inprocess_workers=False))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            assert (await c.get("/healthz", headers={{"traceparent": "00-{TRACE_ID}-{PARENT_SPAN}-01"}})).status_code == 200

from stalela.migrations import upgrade
asyncio.run(upgrade("sqlite:///{tmp_path}/stalela.db"))
asyncio.run(main())
assert not tracing.enabled()
# FastAPI itself imports the OpenTelemetry *API*; the SDK and the exporter must stay unloaded.
loaded = sorted(m for m in sys.modules if m.startswith(("opentelemetry.sdk", "opentelemetry.exporter")))
assert not loaded, loaded
from opentelemetry import trace
assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider"  # no provider was installed
print("ok")
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STALELA_", "OTEL_"))}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]
