"""``GET /metrics`` on the API port (bearer ``STALELA_METRICS_TOKEN``), and the same answer on an
internal listener (``STALELA_METRICS_PORT`` for `stalela serve`, ``STALELA_WORKER_METRICS_PORT``
for `stalela worker`). Never tenant authentication: metrics are for the platform's operators.
"""
from __future__ import annotations

import asyncio
import hmac
import socket
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from stalela.errors import NotFound, Unauthorized
from stalela.observability.logging import get_logger
from stalela.observability.scrape import Exporter
from stalela.kit.jsonbody import JSONRoute

router = APIRouter(route_class=JSONRoute, tags=["observability"], include_in_schema=False)
log = get_logger("stalela.metrics")


def token_ok(expected: str | None, authorization: str | None) -> bool:
    if not expected:
        return True
    scheme, _, value = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), expected.encode())


def _expected_token(settings: Any) -> str | None:
    return settings.metrics_token.get_secret_value() if settings.metrics_token else None


@router.get("/metrics")
async def metrics_endpoint(request: Request) -> Response:
    """Prometheus exposition of every metric; needs ``Authorization: Bearer $STALELA_METRICS_TOKEN``."""
    settings = request.app.state.settings
    token = _expected_token(settings)
    if not token:
        where = f"on the internal port {settings.metrics_port}" if settings.metrics_port else "nowhere"
        raise NotFound(f"metrics are served {where}; set STALELA_METRICS_TOKEN to serve them here",
                       code="metrics_disabled")
    if not token_ok(token, request.headers.get("authorization")):
        raise Unauthorized("a valid metrics token is required", code="metrics_token_invalid",
                           headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    body, content_type = await exporter(request.app).render(request.headers.get("accept"))
    return Response(body, media_type=content_type)


def exporter(app: Any) -> Exporter:
    found = getattr(app.state, "metrics_exporter", None)
    if found is None:
        settings = app.state.settings
        found = Exporter(getattr(app.state, "db", None), cache_seconds=settings.metrics_cache_seconds,
                         tenant_labels=settings.metrics_tenant_labels)
        app.state.metrics_exporter = found
    return found


# --- the internal listener ------------------------------------------------------------------------

_MAX_HEAD = 16 * 1024


class InternalListener:
    """A minimal HTTP/1.1 server answering ``GET /metrics`` (and nothing else), one request per connection.

    For `stalela serve` the socket is opened with SO_REUSEPORT, so every uvicorn worker listens on the
    same port; in multiprocess mode any of them answers with the sum over all of them. A `stalela
    worker` binds its port exclusively: its metrics are its own.
    """

    def __init__(self, exporter_: Exporter, host: str, port: int, token: str | None, *,
                 reuse_port: bool = True) -> None:
        self.exporter = exporter_
        self.host, self.port, self.token = host, port, token
        self.reuse_port = reuse_port
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.reuse_port and hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((self.host, self.port))
        sock.setblocking(False)
        self.server = await asyncio.start_server(self._handle, sock=sock, backlog=64)
        log.info("metrics_listener_started", host=self.host, port=self.port)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            try:
                await asyncio.wait_for(self.server.wait_closed(), 2)
            except asyncio.TimeoutError:
                pass
            self.server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            if len(head) > _MAX_HEAD:
                raise ValueError("head too large")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = (lines[0].split(" ") + ["", ""])[:3]
            headers = {}
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if sep:
                    headers[name.strip().lower()] = value.strip()
            if method not in ("GET", "HEAD"):
                await self._reply(writer, 405, b"method not allowed\n", "text/plain", method)
            elif target.split("?", 1)[0] != "/metrics":
                await self._reply(writer, 404, b"not found\n", "text/plain", method)
            elif not token_ok(self.token, headers.get("authorization")):
                await self._reply(writer, 401, b"unauthorized\n", "text/plain", method)
            else:
                body, content_type = await self.exporter.render(headers.get("accept"))
                await self._reply(writer, 200, body, content_type, method)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, ValueError,
                ConnectionError):
            pass
        except Exception:
            log.exception("metrics_listener_failed")
        finally:
            writer.close()

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, status: int, body: bytes, content_type: str, method: str) -> None:
        reason = {200: "OK", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed"}[status]
        head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        writer.write(head + (b"" if method == "HEAD" else body))
        await writer.drain()
