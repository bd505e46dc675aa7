"""Structured logs (structlog) for the service and for uvicorn's own loggers.

Request-scoped fields (request id, tenant id, outlet id, invoice id, trace id ...) live in structlog's
contextvars, so every line logged while a request or an outbox event is handled carries them without
being passed around. Lines are JSON, or coloured key=value lines for humans when stderr is a terminal
(``STALELA_LOG_FORMAT`` forces either).

Secrets never reach the output: fields with secret-looking names are replaced by ``[redacted]``, and
every string (messages and tracebacks included) is scrubbed of API keys, bearer tokens, JWTs, SQL
parameters and the configured secrets themselves (operator token, master key, PIN, ...).
"""
from __future__ import annotations

import logging
import re
import sys
from typing import Any, Iterable

import structlog

from stalela.errors import ServiceUnavailable
from stalela.observability import tracing

REDACTED = "[redacted]"
# Field names whose values are secrets or buyer personal data.
_SECRET_KEYS = {
    "authorization", "api_key", "password", "token", "secret", "master_key", "pin", "cookie", "set-cookie",
    "private_key", "private_ref", "token_encrypted", "credentials",
    "buyer", "buyer_name", "buyer_tax_id", "customer", "client", "tax_id", "email", "phone",
}
_SECRET_SUFFIXES = ("_token", "_secret", "_password", "_pin", "_key", "_credentials")
_NOT_SECRET = {"idempotency_key", "cache_key", "sort_key", "primary_key"}

_PATTERNS = [
    (re.compile(r"\bsk_[A-Za-z0-9_\-]{6,}"), "sk_" + REDACTED),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{6,}"), r"\1 " + REDACTED),
    (re.compile(r"\beyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*"), REDACTED + "-jwt"),
    # SQLAlchemy puts the bound values of a failed statement in its exception text.
    (re.compile(r"\[parameters: [^\n]*"), "[parameters: " + REDACTED + "]"),
]
# Every pattern above needs one of these texts: a string without any is left as it is after one scan
# instead of one per pattern (every field of every log line goes through ``scrub``).
_SUSPECT = re.compile(r"sk_|(?i:bearer|basic)|eyJ|\[parameters: ")
_known_secrets: set[str] = set()
_known_re: re.Pattern[str] | None = None


def register_secrets(values: Iterable[str | None]) -> None:
    """Literal values (the configured operator token, master key, PIN ...) scrubbed from every line."""
    global _known_re
    added = {v for v in values if v and len(v) >= 6}
    if not added - _known_secrets:
        return
    _known_secrets.update(added)
    _known_re = re.compile("|".join(re.escape(v) for v in sorted(_known_secrets, key=len, reverse=True)))


def scrub(text: str) -> str:
    if _known_re is not None:
        text = _known_re.sub(REDACTED, text)
    if _SUSPECT.search(text) is None:
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _is_secret_key(key: str) -> bool:
    k = key.lower()
    return k in _SECRET_KEYS or (k.endswith(_SECRET_SUFFIXES) and k not in _NOT_SECRET)


def _clean(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if depth > 3:
        return value
    if isinstance(value, dict):
        return {k: (REDACTED if isinstance(k, str) and _is_secret_key(k) else _clean(v, depth + 1))
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v, depth + 1) for v in value]
    return value


def _drop_secrets(_logger, _name, event_dict):  # noqa: ANN001
    event_dict.pop("color_message", None)  # uvicorn's ANSI duplicate of the message
    for key in list(event_dict):
        if key.lower() in _SECRET_KEYS or _is_secret_key(key):
            event_dict[key] = REDACTED
    return event_dict


def _scrub_values(_logger, _name, event_dict):  # noqa: ANN001
    """Last step before rendering, after tracebacks became text."""
    for key, value in event_dict.items():
        if isinstance(value, (str, dict, list, tuple)):
            event_dict[key] = _clean(value)
    return event_dict


def _add_trace_context(_logger, _name, event_dict):  # noqa: ANN001
    ids = tracing.current_ids()
    if ids is not None:
        event_dict.setdefault("trace_id", ids[0])
        event_dict.setdefault("span_id", ids[1])
    return event_dict


def _outages_as_warnings(_logger, _name, event_dict):  # noqa: ANN001
    """A ``ServiceUnavailable`` (database, Redis, signer away) is expected, not a bug: wherever it is
    logged with ``log.exception`` (a worker loop that polls through an outage, say), it becomes a
    warning with its cause in one line, not an error with a traceback at every poll."""
    exc_info = event_dict.get("exc_info")
    if exc_info is True:
        exc_info = sys.exc_info()
    exc = exc_info[1] if isinstance(exc_info, tuple) else exc_info
    if isinstance(exc, ServiceUnavailable):
        del event_dict["exc_info"]
        event_dict["level"] = "warning"
        event_dict.setdefault("error", exc.code)
        event_dict.setdefault("cause", exc.cause())
    return event_dict


def _renderer(log_format: str) -> Any:
    console = log_format == "console" or (log_format == "auto" and sys.stderr.isatty())
    if console:
        return structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty(),
                                             exception_formatter=structlog.dev.plain_traceback)
    return structlog.processors.JSONRenderer()


def configure_logging(level: str = "INFO", log_format: str = "auto") -> None:
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_trace_context,
        _outages_as_warnings,
        _drop_secrets,
    ]
    structlog.configure(
        # The level first: a line the logger would drop (the access line of every request under
        # STALELA_LOG_LEVEL=WARNING) then costs no timestamp, context merge or secret filter.
        processors=[structlog.stdlib.filter_by_level, *shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            # ExtraAdder first: `extra=` fields must go through the secret filter too.
            foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                _scrub_values,
                _renderer(log_format),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn installs its own handlers; route its records through ours instead.
    # (Levels too: an earlier uvicorn.Config in this process may have set its own.)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
        lg.disabled = False
        lg.setLevel(logging.NOTSET)
    # Our middleware logs every request with latency and ids; uvicorn's access line would duplicate it.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    # aiosqlite and the engine log bound parameters (buyer data) at DEBUG; httpcore logs every socket event.
    for noisy in ("sqlalchemy.engine", "aiosqlite", "asyncio", "alembic", "httpcore", "hpack"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str = "stalela"):
    return structlog.get_logger(name)
