"""Which handler runs for which outbox topic. Handlers must be idempotent: delivery is at least once.

The outbox knows no consumer. A domain's ``tasks.py`` registers its handlers with ``@handles`` when it
is imported, and the composition root (``stalela.workers``, which the app factory imports too)
imports every such module. Importing them from here would close an import circle: they import this
module for ``handles`` and ``Event``.
"""
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
BatchHandler = Callable[[HandlerContext, list[Event]], Awaitable[None]]
_handlers: dict[str, list[Handler]] = {}
_batch_handlers: dict[str, list[BatchHandler]] = {}


def handles(topic: str) -> Callable[[Handler], Handler]:
    """Several domains may consume one topic (the sync agent and webhooks both want invoice.sealed).

    They run one after the other; if one fails, the event is retried and all run again, which is
    why every handler must be idempotent.
    """
    return _registrar(_handlers, topic)


def handles_batch(topic: str) -> Callable[[BatchHandler], BatchHandler]:
    """A handler that takes every event of ``topic`` in a claimed batch at once (any tenants), so that it can
    do their work in one transaction instead of one per event (usage metering of sealed invoices).

    It runs before the topic's per-event handlers. If it fails, every event of its batch fails the same
    way (retried with backoff, or rescheduled on ``RetryLater``), and all handlers run again: idempotent.
    """
    return _registrar(_batch_handlers, topic)


def _registrar(table: dict[str, list[Any]], topic: str) -> Callable[[Any], Any]:
    def register(fn: Any) -> Any:
        chain = table.setdefault(topic, [])
        if fn not in chain:
            chain.append(fn)
        return fn

    return register


def handlers_for(topic: str) -> list[Handler]:
    return _handlers.get(topic, [])


def batch_handlers_for(topic: str) -> list[BatchHandler]:
    return _batch_handlers.get(topic, [])


def consumed_topics() -> set[str]:
    """Topics some registered handler consumes."""
    return {topic for topic, handlers in (*_handlers.items(), *_batch_handlers.items()) if handlers}


class RetryLater(Exception):
    """A handler asks to be retried after ``delay`` seconds without it counting as a failure."""

    def __init__(self, reason: str, delay: float) -> None:
        super().__init__(reason)
        self.delay = delay
