"""Running the simulator under uvicorn, with the one power stock uvicorn lacks: hanging up.

The ``drop`` faults must close the TCP connection without any HTTP response, so the client sees
a connection/protocol error rather than a status code. An ASGI app cannot do that through uvicorn
(an exception before the response becomes a 500), so the HTTP protocol classes below hand each
request an ``abort`` callable in ``scope["extensions"]``, bound to the connection's transport.
"""
from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn

ABORT_EXTENSION = "stalela.simulator.abort"


def _with_abort(base: type) -> type:
    class AbortableProtocol(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            inner = self.app

            async def app(scope, receive, send):  # noqa: ANN001 - plain ASGI
                if scope["type"] == "http":
                    extensions = dict(scope.get("extensions") or {})
                    extensions[ABORT_EXTENSION] = self._abort_connection
                    scope["extensions"] = extensions
                await inner(scope, receive, send)

            self.app = app

        def _abort_connection(self) -> None:
            # abort(), not close(): nothing buffered may still reach the client.
            if self.transport is not None and not self.transport.is_closing():
                self.transport.abort()

    AbortableProtocol.__name__ = f"Abortable{base.__name__}"
    return AbortableProtocol


def http_protocol_class() -> type:
    """httptools when installed (uvicorn's own preference), else h11, either way abortable."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # httptools is an optional extra of uvicorn
        from uvicorn.protocols.http.h11_impl import H11Protocol

        return _with_abort(H11Protocol)
    return _with_abort(HttpToolsProtocol)


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket; binding before serving lets callers learn the port when it is 0."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def listen(host: str, port: int) -> tuple[socket.socket, str]:
    """``bind_socket`` and the http URL it serves (with the port picked when ``port`` is 0)."""
    sock = bind_socket(host, port)
    shown = f"[{host}]" if ":" in host else host
    return sock, f"http://{shown}:{sock.getsockname()[1]}"


class _Server(uvicorn.Server):
    # uvicorn re-raises a captured SIGTERM after shutting down, which kills the process before
    # main() can return; the simulator's callers want a clean exit status, so they handle
    # signals themselves (see serve()).
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def make_server(app: Callable, *, log_level: str = "warning") -> uvicorn.Server:
    config = uvicorn.Config(
        app, http=http_protocol_class(), ws="none", lifespan="off", log_level=log_level,
        access_log=log_level in ("debug", "trace"),
        # A request held by a timeout fault must not hold up shutdown for timeout_seconds.
        timeout_graceful_shutdown=1,
    )
    return _Server(config)


def serve(app: Callable, sock: socket.socket, *, log_level: str = "warning") -> None:
    """Serve on ``sock`` in this (main) thread until SIGINT or SIGTERM."""
    server = make_server(app, log_level=log_level)

    def stop(signum: int, frame: object) -> None:
        server.should_exit = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class SimulatorServer:
    """The app on a loopback port in a background thread: ``with SimulatorServer(app) as s:``."""

    def __init__(self, app: Callable, host: str = "127.0.0.1", port: int = 0,
                 *, log_level: str = "warning") -> None:
        self.app, self.host, self.port, self.log_level = app, host, port, log_level
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 10.0) -> SimulatorServer:
        sock = bind_socket(self.host, self.port)
        self.port = sock.getsockname()[1]
        self._server = make_server(self.app, log_level=self.log_level)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name=f"dgi-simulator-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self._server.started:
            self.stop()
            raise RuntimeError("the simulator did not start")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
