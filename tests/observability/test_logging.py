"""Logs are JSON lines and never carry secrets, whichever logger emits them."""
from __future__ import annotations

import json
import logging

import structlog

from stalela.observability.logging import configure_logging


def test_json_lines_without_secrets(capsys):
    configure_logging("INFO")
    structlog.get_logger("t").info("structlog_event", api_key="sk_secret1", tenant_id="ten_1")
    logging.getLogger("uvicorn.error").info("stdlib_event", extra={"token": "tok_secret2", "color_message": "\x1b[1m"})
    lines = [json.loads(line) for line in capsys.readouterr().err.strip().splitlines()]
    assert [line["event"] for line in lines] == ["structlog_event", "stdlib_event"]
    assert all(line["level"] == "info" and line["timestamp"].endswith("Z") for line in lines)
    text = json.dumps(lines)
    assert "sk_secret1" not in text and "tok_secret2" not in text and "color_message" not in text
    assert lines[0]["tenant_id"] == "ten_1"
