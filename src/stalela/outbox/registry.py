"""Which handler runs for which outbox topic. Handlers must be idempotent: delivery is at least once."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from stalela.config import Settings
from stalela.db.session import Database


@dataclass(frozen=True)
class Event:
    tenant_id: str
    id: str
    topic: str
    payload: dict[str, Any]
    attempts: int


@dataclass(frozen=True)
class HandlerContext:
    db: Database
    settings: Settings


Handler = Callable[[HandlerContext, Event], Awaitable[None]]
_handlers: dict[str, Handler] = {}


def handles(topic: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        _handlers[topic] = fn
        return fn

    return register


def handler_for(topic: str) -> Handler | None:
    _load()
    return _handlers.get(topic)


def _load() -> None:
    # Importing the domains' tasks modules registers their handlers; done lazily to avoid cycles.
    from stalela.authority import tasks as _authority  # noqa: F401


class RetryLater(Exception):
    """A handler asks to be retried after ``delay`` seconds without it counting as a failure."""

    def __init__(self, reason: str, delay: float) -> None:
        super().__init__(reason)
        self.delay = delay
