"""Logs are JSON lines (or a human rendering on a terminal), carry correlation ids, and never secrets."""
from __future__ import annotations

import json
import logging

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from stalela.observability import context, tracing
from stalela.observability.logging import configure_logging, get_logger, register_secrets, scrub


def _lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().err.strip().splitlines()]


def test_json_lines_without_secrets(capsys):
    configure_logging("INFO")
    structlog.get_logger("t").info("structlog_event", api_key="sk_secret1", tenant_id="ten_1")
    logging.getLogger("uvicorn.error").info("stdlib_event", extra={"token": "tok_secret2", "color_message": "\x1b[1m"})
    lines = _lines(capsys)
    assert [line["event"] for line in lines] == ["structlog_event", "stdlib_event"]
    assert all(line["level"] == "info" and line["timestamp"].endswith("Z") for line in lines)
    assert [line["logger"] for line in lines] == ["t", "uvicorn.error"]
    text = json.dumps(lines)
    assert "sk_secret1" not in text and "tok_secret2" not in text and "color_message" not in text
    assert lines[0]["tenant_id"] == "ten_1"


def test_secret_values_are_scrubbed_wherever_they_appear(capsys):
    configure_logging("INFO")
    register_secrets(["operator-token-0123456789", "0f" * 32])
    log = get_logger("t")
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJkZXZpY2UifQ.c2lnbmF0dXJlLWJ5dGVz"
    log.info("free text", detail=f"key sk_live_AbCdEf123456 and Authorization: Bearer {jwt} here",
             nested={"device_token": "plain-device-secret", "buyer": {"name": "Jane Buyer"}, "ok": "kept"},
             operator="operator-token-0123456789", master=("0f" * 32), idempotency_key="idem-1")
    try:
        raise RuntimeError('(sqlite3.IntegrityError) UNIQUE failed\n[SQL: INSERT INTO invoices VALUES (?, ?)]\n'
                           "[parameters: ('inv_1', '{\"buyer\": {\"name\": \"Jane Buyer\"}}')]\n(Background on this)")
    except RuntimeError:
        log.exception("db_failed")
    logging.getLogger("stalela.x").warning("stdlib %s", "sk_other_0123456789")
    out = capsys.readouterr().err
    for secret in ("sk_live_AbCdEf123456", jwt, "plain-device-secret", "Jane Buyer", "operator-token-0123456789",
                   "0f" * 32, "sk_other_0123456789"):
        assert secret not in out, secret
    lines = [json.loads(line) for line in out.strip().splitlines()]
    assert lines[0]["nested"]["ok"] == "kept" and lines[0]["idempotency_key"] == "idem-1"
    assert "[SQL: INSERT INTO invoices" in lines[1]["exception"]  # the statement stays: it has no values


def test_scrub_keeps_ordinary_text():
    text = "sealed FV-0001 for out_01abc in 3.2 ms (tenant ten_01xyz, key sig_01k)"
    assert scrub(text) == text


def test_console_renderer_for_humans(capsys):
    configure_logging("INFO", "console")
    get_logger("t").info("hello_human", tenant_id="ten_1", token="should-not-show")
    err = capsys.readouterr().err
    assert "hello_human" in err and "tenant_id" in err and "should-not-show" not in err
    with pytest.raises(json.JSONDecodeError):
        json.loads(err.strip().splitlines()[0])
    configure_logging("INFO")


def test_auto_format_follows_the_terminal(capsys, monkeypatch):
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    configure_logging("INFO", "auto")
    get_logger("t").info("on_a_tty")
    assert not capsys.readouterr().err.lstrip().startswith("{")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    configure_logging("INFO", "auto")
    get_logger("t").info("in_a_pipe")
    assert json.loads(capsys.readouterr().err)["event"] == "in_a_pipe"


def test_correlation_ids_are_bound_and_only_ids(capsys):
    configure_logging("INFO")
    structlog.contextvars.clear_contextvars()
    context.bind(tenant_id="ten_1", outlet_id="out_1", invoice_id=None)
    context.bind(invoice_id="inv_1")
    get_logger("t").info("sealed")
    logging.getLogger("httpx").info("stdlib line inside the same context")
    lines = _lines(capsys)
    for line in lines:
        assert (line["tenant_id"], line["outlet_id"], line["invoice_id"]) == ("ten_1", "out_1", "inv_1")
    with pytest.raises(ValueError):
        context.bind(buyer_name="Jane")
    structlog.contextvars.clear_contextvars()


def test_trace_ids_in_logs_when_a_span_is_active(capsys, monkeypatch):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "_tracer", provider.get_tracer("test"))
    configure_logging("INFO")
    log = get_logger("t")
    log.info("outside")
    with tracing.span("work") as span:
        log.info("inside")
        context.bind(invoice_id="inv_9")
        expected = format(span.get_span_context().trace_id, "032x")
    structlog.contextvars.clear_contextvars()
    outside, inside = _lines(capsys)
    assert "trace_id" not in outside
    assert inside["trace_id"] == expected and len(inside["span_id"]) == 16
    (finished,) = exporter.get_finished_spans()
    assert finished.attributes["stalela.invoice_id"] == "inv_9"


def test_an_outage_logged_as_an_exception_is_one_warning_line_without_traceback(capsys):
    from stalela.errors import DatabaseUnavailable

    configure_logging("INFO")
    log = get_logger("t")
    for _ in range(2):  # e.g. a worker loop polling through a database outage
        try:
            try:
                raise ConnectionRefusedError(111, "Connect call failed ('10.0.0.5', 5432)")
            except ConnectionRefusedError as exc:
                raise DatabaseUnavailable("the database is unavailable") from exc
        except DatabaseUnavailable:
            log.exception("outbox_dispatch_failed")
    try:
        raise RuntimeError("a bug")
    except RuntimeError:
        log.exception("still_a_bug")
    outage, _, bug = _lines(capsys)
    assert (outage["level"], outage["error"]) == ("warning", "database_unavailable")
    assert outage["cause"].startswith("ConnectionRefusedError: ") and "exception" not in outage
    assert bug["level"] == "error" and "Traceback" in bug["exception"]


_FRAGMENTS = st.sampled_from(["sk_", "sk_live_AbCdEf123456", "Bearer ", "bAsIc dXNlcjpwYXNz", "eyJhbGciOiJIUzI1NiJ9.eyJ4Ijo",
                              "eyJ", ".c2ln", "[parameters: ('inv_1')]", "[parameters:", " ", "\n", "x", "é"])


@settings(max_examples=400, deadline=None)
@given(st.lists(_FRAGMENTS | st.text(max_size=6), max_size=12).map("".join))
def test_scrub_answers_what_every_pattern_would(text):
    """scrub skips the patterns when none can match: its answer is the one applying them all."""
    from stalela.observability import logging as log_module

    expected = log_module._known_re.sub("[redacted]", text) if log_module._known_re is not None else text
    for pattern, replacement in log_module._PATTERNS:
        expected = pattern.sub(replacement, expected)
    assert scrub(text) == expected


def test_lines_below_the_level_are_dropped_before_any_processing(capsys, monkeypatch):
    from stalela.observability import logging as log_module

    configure_logging("WARNING")
    seen = []
    monkeypatch.setattr(log_module.tracing, "current_ids", lambda: seen.append(1))  # the trace-context step
    log = get_logger("t")
    log.info("dropped")
    log.debug("dropped too")
    assert seen == [] and capsys.readouterr().err == ""
    log.warning("kept", token="x")
    assert seen == [1]
    assert _lines(capsys)[0]["event"] == "kept"
    configure_logging("INFO")
