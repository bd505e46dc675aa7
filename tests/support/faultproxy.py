"""A real HTTP proxy on loopback that injects faults in front of a live server (no mock transport).

Each request is forwarded to the upstream unless a queued fault says otherwise:
- ``("status", 503, {"Retry-After": "0"})``: answer that status without forwarding;
- ``("drop_before",)``: close the connection before forwarding (the request never reached the server);
- ``("drop_after",)``: forward, then close the connection without answering (the answer was lost).
Every request is recorded (method, path, headers) so a test sees what the client sent on each attempt.
"""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "content-encoding"}


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    fault: tuple[Any, ...] | None


@dataclass
class FaultProxy:
    upstream: str
    faults: deque = field(default_factory=deque)
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def inject(self, *faults: tuple[Any, ...]) -> None:
        with self.lock:
            self.faults.extend(faults)

    def reset(self) -> None:
        with self.lock:
            self.faults.clear()
            self.seen.clear()

    def _next(self, method: str, path: str, headers: dict[str, str]) -> tuple[Any, ...] | None:
        with self.lock:
            fault = self.faults.popleft() if self.faults else None
            self.seen.append(Seen(method, path, headers, fault))
            return fault

    def start(self) -> "FaultProxy":
        proxy = self
        upstream = httpx.Client(base_url=self.upstream, timeout=60)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                fault = proxy._next(self.command, self.path, headers)
                if fault and fault[0] == "drop_before":
                    self.close_connection = True
                    self.connection.close()
                    return
                if fault and fault[0] == "status":
                    payload = b'{"type":"about:blank","title":"injected","status":%d,"code":"injected_fault",' \
                              b'"detail":"injected by the test proxy"}' % fault[1]
                    self.send_response(fault[1])
                    for k, v in (fault[2] if len(fault) > 2 else {}).items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/problem+json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                fwd = {k: v for k, v in headers.items() if k not in _HOP}
                answer = upstream.request(self.command, self.path, content=body, headers=fwd)
                if fault and fault[0] == "drop_after":
                    self.close_connection = True
                    self.connection.close()
                    return
                self.send_response(answer.status_code)
                for k, v in answer.headers.items():
                    if k.lower() not in _HOP:
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
