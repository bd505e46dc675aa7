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
_handlers: dict[str, list[Handler]] = {}


def handles(topic: str) -> Callable[[Handler], Handler]:
    """Several domains may consume one topic (the sync agent and webhooks both want invoice.sealed).

    They run one after the other; if one fails, the event is retried and all run again, which is
    why every handler must be idempotent.
    """
    def register(fn: Handler) -> Handler:
        chain = _handlers.setdefault(topic, [])
        if fn not in chain:
            chain.append(fn)
        return fn

    return register


def handlers_for(topic: str) -> list[Handler]:
    _load()
    return _handlers.get(topic, [])


def _load() -> None:
    # Importing the domains' tasks modules registers their handlers; done lazily to avoid cycles.
    # Each domain that consumes events adds its line here.
    from stalela.webhooks import tasks as _webhooks  # noqa: F401
    from stalela.authority import tasks as _authority  # noqa: F401


class RetryLater(Exception):
    """A handler asks to be retried after ``delay`` seconds without it counting as a failure."""

    def __init__(self, reason: str, delay: float) -> None:
        super().__init__(reason)
        self.delay = delay
