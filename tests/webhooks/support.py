"""A real HTTP receiver on loopback (a thread) whose answers the tests script, and a clock they drive."""
from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook

from stalela.db.base import utcnow


class FakeClock:
    """Webhook time stands still until a test advances it. ``max_wait`` bounds the real seconds the
    outbox sleeps before looking at a not-yet-due message again (0: at once)."""

    def __init__(self, max_wait: float = 0.0) -> None:
        self.t = utcnow()
        self.max_wait = max_wait

    def now(self) -> datetime:
        return self.t

    def wait(self, seconds: float) -> float:
        return max(0.0, min(seconds, self.max_wait))

    def advance(self, **delta: float) -> None:
        self.t += timedelta(**delta)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    def json(self) -> Any:
        return json.loads(self.body)

    def verify(self, secret: str) -> Any:
        """With the PyPI standardwebhooks library, not our code."""
        return Webhook(secret).verify(self.body, self.headers)


@dataclass
class Plan:
    """What a path answers: scripted answers first (status, headers, body, delay), then ``default``."""
    script: list[tuple[int, dict[str, str], bytes, float]] = field(default_factory=list)
    default: tuple[int, dict[str, str], bytes, float] = (200, {}, b"ok", 0.0)
    hold: threading.Event | None = None  # when set: every request waits for this event first


class Receiver:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.plans: dict[str, Plan] = defaultdict(Plan)
        self.in_flight: dict[str, int] = defaultdict(int)
        self.max_in_flight: dict[str, int] = defaultdict(int)
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                path = self.path
                with receiver.lock:
                    receiver.requests.append(Received(path, {k.lower(): v for k, v in self.headers.items()},
                                                      body, time.monotonic()))
                    plan = receiver.plans[path]
                    answer = plan.script.pop(0) if plan.script else plan.default
                    receiver.in_flight[path] += 1
                    receiver.max_in_flight[path] = max(receiver.max_in_flight[path], receiver.in_flight[path])
                try:
                    if plan.hold is not None:
                        plan.hold.wait(60)
                    status, headers, payload, delay = answer
                    if delay:
                        time.sleep(delay)
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with receiver.lock:
                        receiver.in_flight[path] -= 1

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def answer(self, path: str, *statuses: int | tuple, default: int | tuple | None = None,
               hold: threading.Event | None = None) -> None:
        def norm(a: int | tuple) -> tuple[int, dict[str, str], bytes, float]:
            a = a if isinstance(a, tuple) else (a,)
            status, headers, body, delay = (tuple(a) + (None, None, None))[:4]
            return status, headers or {}, body if body is not None else b"ok", delay or 0.0
        with self.lock:
            plan = self.plans[path]
            plan.script = [norm(s) for s in statuses]
            if default is not None:
                plan.default = norm(default)
            plan.hold = hold

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def stop(self) -> None:
        for plan in self.plans.values():
            if plan.hold is not None:
                plan.hold.set()
        self.server.shutdown()
        self.server.server_close()
