"""Webhook deliveries that arrive while the database is down: kept on the API process's disk, answered 2xx,
stored in the database once it is back (``drain``).

Why a spool: WooCommerce never retries a webhook (and disables it after five failures), Mercado Libre wants
an answer within 500 ms, so a 5xx during an outage would lose orders or a webhook. Each delivery is its own
file, written to a temporary name, fsynced, renamed, and the directory fsynced: after a crash a file is
either whole or absent. The signature cannot be checked while the connection's secret is out of reach, so
spooled deliveries are checked when drained and a bad one is dropped then (logged), never processed.
"""
from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from stalela.db.base import utcnow
from stalela.errors import ServiceUnavailable
from stalela.kit.clock import rfc3339


@dataclass(frozen=True)
class Spooled:
    path: Path
    platform: str
    connection_id: str
    headers: dict[str, str]
    body: bytes
    received_at: datetime


class SpoolFull(ServiceUnavailable):
    code = "webhook_spool_full"
    title = "The database is down and the webhook spool is full"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def put(directory: Path, max_files: int, platform: str, connection_id: str, headers: dict[str, str],
        body: bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    if sum(1 for _ in directory.glob("*.json")) >= max_files:
        raise SpoolFull("the database is down and the webhook spool is full: retry later")
    now = utcnow()
    name = f"{now.strftime('%Y%m%dT%H%M%S%f')}-{uuid.uuid4().hex}"
    record = {"platform": platform, "connection_id": connection_id, "headers": headers,
              "body": base64.b64encode(body).decode(), "received_at": rfc3339(now)}
    tmp = directory / f".{name}.tmp"
    with open(tmp, "wb") as f:
        f.write(json.dumps(record).encode())
        f.flush()
        os.fsync(f.fileno())
    final = directory / f"{name}.json"
    os.replace(tmp, final)
    _fsync_dir(directory)
    return final


def pending(directory: Path, limit: int = 500) -> list[Path]:
    """Oldest first (names start with the time received)."""
    if not directory.is_dir():
        return []
    return sorted(directory.glob("*.json"))[:limit]


def load(path: Path) -> Spooled:
    record = json.loads(path.read_bytes())
    return Spooled(path, record["platform"], record["connection_id"], record["headers"],
                   base64.b64decode(record["body"]), datetime.fromisoformat(record["received_at"].replace("Z", "+00:00")))


async def drain(directory: Path, store: Callable[[Spooled], Awaitable[None]]) -> int:
    """Store every spooled delivery through ``store`` and delete its file after it committed; stops at the
    first outage (the rest waits for the next round). Returns how many were stored."""
    done = 0
    for path in pending(directory):
        try:
            item = load(path)
        except (OSError, ValueError, KeyError):
            path.rename(path.with_suffix(".unreadable"))  # kept for a person to look at, never retried
            continue
        try:
            await store(item)
        except ServiceUnavailable:
            raise  # the database is still away: stop here, this file first next time
        except Exception:
            # Anything else would fail the same way forever and hold every later file back: kept aside.
            path.rename(path.with_suffix(".failed"))
            raise
        path.unlink(missing_ok=True)
        done += 1
    return done
