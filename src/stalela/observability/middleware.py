"""Pure ASGI middleware: request id, request span and metrics, access log line, and the body size cap."""
from __future__ import annotations

import json
import logging
import re
import time
import uuid

import structlog
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stalela.errors import PayloadTooLarge, StalelaError, UnsupportedMediaType
from stalela.kit.problems import localized_problem, problem_headers, problem_language
from stalela.observability import metrics, tracing
from stalela.observability.logging import get_logger

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
log = get_logger("stalela.http")
_access = logging.getLogger("stalela.http")  # the stdlib logger behind ``log``, for its level


def route_template(scope: Scope) -> str:
    """The matched route's path template (``/v1/invoices/{invoice_id}``), never the raw path."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template or UNROUTED


UNROUTED = "<unrouted>"  # no route matched (404), or refused before routing (413, 415)
_QUIET = frozenset({"/metrics", "/healthz", "/readyz"})


class RequestContextMiddleware:
    """Request id, the request's span, its metrics and its one access log line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500
        method = scope["method"]

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                extra = [(b"x-request-id", request_id.encode())]
                # The caller's rate-limit budget (auth.dependencies), on every answer, not only on 429.
                limits = scope.get("state", {}).get("ratelimit_headers") or {}
                present = {name.lower() for name, _ in message["headers"]}
                extra += [(k.lower().encode(), v.encode()) for k, v in limits.items() if k.lower().encode() not in present]
                message["headers"] = [*message["headers"], *extra]
            await send(message)

        with tracing.server_span(method, scope["headers"], {
            "http.request.method": method, "url.path": scope["path"], "url.scheme": scope.get("scheme"),
            "stalela.request_id": request_id,
        }) as span:
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                self._done(scope, method, status, started, span)

    @staticmethod
    def _done(scope: Scope, method: str, status: int, started: float, span: object) -> None:
        elapsed = time.perf_counter() - started
        endpoint = route_template(scope)
        tenant_id = scope.get("state", {}).get("tenant_id")
        metrics.observe_request(method, endpoint, status, tenant_id, elapsed)
        if span is not tracing.NOOP_SPAN:
            span.update_name(f"{method} {endpoint}")
            span.set_attributes({"http.route": endpoint, "http.response.status_code": status})
            if status >= 500:
                tracing.mark_error(span, f"HTTP {status}")
        level = logging.DEBUG if endpoint in _QUIET and status < 400 else logging.INFO
        if not _access.isEnabledFor(level):  # asked first: a dropped line then costs no structlog call
            return
        log.log(
            level,
            "request",
            method=method,
            path=scope["path"],
            endpoint=endpoint,
            status=status,
            latency_ms=round(elapsed * 1000, 2),
            tenant_id=tenant_id,
        )


_BODY_METHODS = {"POST", "PUT", "PATCH"}


def _is_json(content_type: bytes) -> bool:
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))


# The server-rendered consoles (stalela.dashboard) post plain HTML forms; the API stays JSON-only.
_FORM_PATHS = ("/app/", "/ops/")


def _is_console_form(path: str, content_type: bytes) -> bool:
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/x-www-form-urlencoded" and path.startswith(_FORM_PATHS)


# The few routes that take a file, and the media they take (each route checks the file itself: the logo's
# type and content with Pillow, accounts/logos.py).
_UPLOADS = {"/v1/tenant/logo": b"image/", "/app/branding/logo": b"multipart/form-data"}


def _is_upload(path: str, content_type: bytes) -> bool:
    accepted = _UPLOADS.get(path)
    return accepted is not None and content_type.split(b";", 1)[0].strip().lower().startswith(accepted)


# Marketplaces' webhooks: the platform chooses the media type (WooCommerce's ping is a form, a notification may
# come with none), the route reads the raw bytes whatever they are, and a 415 would count as a failed delivery
# (WooCommerce disables a webhook after five).
_ANY_MEDIA = ("/v1/connectors/",)


class BodyGuardMiddleware:
    """Refuse non-JSON bodies (415) and bodies above the limit (413) while they stream in."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        content_type = headers.get(b"content-type")
        has_body = (declared not in (None, b"0")) or b"transfer-encoding" in headers
        if scope["method"] in _BODY_METHODS and has_body and not scope["path"].startswith(_ANY_MEDIA) and (
                content_type is None or not (
                    _is_json(content_type) or _is_console_form(scope["path"], content_type)
                    or _is_upload(scope["path"], content_type))):
            await _send_problem(send, UnsupportedMediaType("send JSON with 'Content-Type: application/json'"), scope)
            return
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _send_problem(send, PayloadTooLarge(f"request body exceeds {self.max_bytes} bytes"), scope)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise PayloadTooLarge(f"request body exceeds {self.max_bytes} bytes")
            return message

        await self.app(scope, limited_receive, send)


async def _send_problem(send: Send, error: StalelaError, scope: Scope) -> None:
    l10n = problem_language(Request(scope))
    body = json.dumps({**localized_problem(error, l10n), "instance": scope["path"],
                       "request_id": scope.get("state", {}).get("request_id")}).encode()
    headers = [(name.lower().encode(), value.encode()) for name, value in problem_headers(error, l10n).items()]
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [(b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode()),
                        *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})
