"""The machine's local services (Redis, NATS): tests that need one skip with a reason when it is away."""
from __future__ import annotations

import socket


def listening(port: int, host: str = "127.0.0.1") -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False
