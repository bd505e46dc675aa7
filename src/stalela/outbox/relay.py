"""Relay of every outbox event to NATS JetStream, for downstream consumers (off unless configured).

Subject ``<stream lowercased>.events.<topic>``; the event id is the JetStream message id, so the
stream's duplicate window drops a second publish of the same event (a retry after a crash).
"""
from __future__ import annotations

import json

import nats
from nats.js.api import StreamConfig

from stalela.config import Settings
from stalela.outbox.models import OutboxEvent
from stalela.kit.clock import rfc3339


class NatsRelay:
    def __init__(self, settings: Settings) -> None:
        self.url = settings.nats_url
        self.stream = settings.nats_stream
        self.prefix = f"{settings.nats_stream.lower()}.events"
        self._nc = None
        self._js = None

    async def _jetstream(self):  # noqa: ANN202
        if self._js is None or self._nc is None or self._nc.is_closed:
            self._nc = await nats.connect(self.url, connect_timeout=5, allow_reconnect=True, max_reconnect_attempts=3)
            self._js = self._nc.jetstream()
            try:
                await self._js.add_stream(StreamConfig(name=self.stream, subjects=[f"{self.prefix}.>"]))
            except Exception:  # already there (possibly with other settings an operator chose): use it as is
                await self._js.stream_info(self.stream)
        return self._js

    def subject(self, topic: str) -> str:
        return f"{self.prefix}.{topic}"

    async def publish(self, event: OutboxEvent) -> None:
        js = await self._jetstream()
        body = {"id": event.id, "tenant_id": event.tenant_id, "topic": event.topic,
                "created_at": rfc3339(event.created_at), "payload": json.loads(event.payload)}
        await js.publish(self.subject(event.topic), json.dumps(body).encode(), headers={"Nats-Msg-Id": event.id})

    async def close(self) -> None:
        if self._nc is not None and not self._nc.is_closed:
            await self._nc.drain()
