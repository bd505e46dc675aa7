"""Relay of every outbox event to NATS JetStream, for downstream consumers (off unless configured).

Subjects carry the tenant, so a consumer subscribes to one tenant, one topic or everything with a
wildcard (docs/operations.md, "NATS subjects"); with ``p`` the stream's name lowercased:

- ``p.events.tenants.<tenant_id>.<topic>``: every tenant's events, in the stream ``STALELA_NATS_STREAM``;
- ``p.events.dedicated.<tenant_id>.<topic>``: with ``STALELA_NATS_DEDICATED_STREAMS``, a dedicated-tier
  tenant's events, in a stream of its own, ``<stream>_<tenant_id>``, created on the tenant's first event.

JetStream refuses streams whose subjects overlap; these never do: the shared stream holds
``p.events.tenants.>`` and each dedicated stream ``p.events.dedicated.<its tenant>.>`` (the second
token tells the spaces apart, the third the tenants). ``p.events.*.<tenant_id>.>`` follows a tenant
whichever tier it is on. Every message has the tenant id and the topic in headers too
(``Stalela-Tenant-Id``, ``Stalela-Topic``), and the event id as its JetStream message id, so the
stream's duplicate window drops a second publish of the same event (a retry after a crash).
"""
from __future__ import annotations

import json
import re
import time
from typing import Awaitable, Callable

import nats
from nats.js.api import StreamConfig

from stalela.config import Settings
from stalela.kit.clock import rfc3339
from stalela.observability.logging import get_logger
from stalela.outbox.models import OutboxEvent

log = get_logger("stalela.outbox.relay")

TierOf = Callable[[str], Awaitable[str]]
# A tenant's tier is looked up once per this many seconds and process: events of a tenant that just
# moved between tiers reach the subjects of its new tier within it.
TIER_TTL_SECONDS = 10.0
_TIERS_MAX = 10_000
# One subject token, and a valid part of a stream name: no '.', '*', '>', space or path separator.
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# What a dedicated stream takes over from the shared one, so the operator configures retention once.
_INHERITED = ("retention", "max_msgs", "max_bytes", "max_age", "max_msg_size", "storage", "num_replicas",
              "discard", "duplicate_window")


class NatsRelay:
    def __init__(self, settings: Settings, tier_of: TierOf | None = None) -> None:
        self.url = settings.nats_url
        self.stream = settings.nats_stream
        self.prefix = f"{settings.nats_stream.lower()}.events"
        # ``tier_of`` is needed only when dedicated tenants get streams of their own.
        self.dedicated_streams = settings.nats_dedicated_streams and tier_of is not None
        self._tier_of = tier_of
        self._tiers: dict[str, tuple[float, str]] = {}
        self._streams: set[str] = set()  # dedicated streams known to exist
        self._template = StreamConfig()
        self._nc = None
        self._js = None

    async def _jetstream(self):  # noqa: ANN202
        if self._js is None or self._nc is None or self._nc.is_closed:
            self._nc = await nats.connect(self.url, connect_timeout=5, allow_reconnect=True, max_reconnect_attempts=3)
            self._js = self._nc.jetstream()
            try:
                info = await self._js.add_stream(StreamConfig(name=self.stream, subjects=[f"{self.prefix}.tenants.>"]))
            except Exception:  # already there (possibly with other settings an operator chose): use it as is
                info = await self._js.stream_info(self.stream)
            self._template = info.config
            if self.dedicated_streams and f"{self.prefix}.>" in (info.config.subjects or []):
                await self._narrow_shared_stream(info.config)
        return self._js

    async def _narrow_shared_stream(self, config: StreamConfig) -> None:
        """A shared stream made before tenants had subjects of their own holds ``p.events.>``, which
        overlaps every dedicated stream: it keeps its messages and gives up the dedicated space."""
        subjects = [s for s in config.subjects or [] if s != f"{self.prefix}.>"] + [f"{self.prefix}.tenants.>"]
        log.warning("nats_shared_stream_narrowed", stream=self.stream, subjects=subjects)
        config.subjects = subjects
        await self._js.update_stream(config)

    def subject(self, tenant_id: str, topic: str, tier: str = "shared") -> str:
        space = "dedicated" if tier == "dedicated" and self.dedicated_streams else "tenants"
        return f"{self.prefix}.{space}.{_token(tenant_id)}.{topic}"

    def stream_of(self, tenant_id: str, tier: str = "shared") -> str:
        if tier == "dedicated" and self.dedicated_streams:
            return f"{self.stream}_{_token(tenant_id)}"
        return self.stream

    async def tier(self, tenant_id: str) -> str:
        if not self.dedicated_streams:
            return "shared"  # no lookup at all: every tenant is in the shared stream
        cached = self._tiers.get(tenant_id)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        tier = await self._tier_of(tenant_id)
        if len(self._tiers) >= _TIERS_MAX:
            self._tiers.clear()  # a crude bound; a miss only costs a lookup
        self._tiers[tenant_id] = (now + TIER_TTL_SECONDS, tier)
        return tier

    async def _ensure_stream(self, js, tenant_id: str, name: str) -> None:  # noqa: ANN001
        if name in self._streams:
            return
        inherited = {field: getattr(self._template, field) for field in _INHERITED
                     if getattr(self._template, field, None) is not None}
        config = StreamConfig(name=name, subjects=[f"{self.prefix}.dedicated.{_token(tenant_id)}.>"],
                              description=f"Stalela events of the dedicated tenant {tenant_id}", **inherited)
        try:
            await js.add_stream(config)
        except Exception:  # made by another relay meanwhile, or by the operator: use it as is
            await js.stream_info(name)
        self._streams.add(name)

    async def publish(self, event: OutboxEvent) -> None:
        js = await self._jetstream()
        tier = await self.tier(event.tenant_id)
        stream = self.stream_of(event.tenant_id, tier)
        if stream != self.stream:
            await self._ensure_stream(js, event.tenant_id, stream)
        body = {"id": event.id, "tenant_id": event.tenant_id, "topic": event.topic,
                "created_at": rfc3339(event.created_at), "payload": json.loads(event.payload)}
        headers = {"Nats-Msg-Id": event.id, "Stalela-Tenant-Id": event.tenant_id, "Stalela-Topic": event.topic}
        # ``stream``: JetStream refuses the message unless that stream takes it, so a dedicated tenant's
        # events can never land in the shared stream (nor the reverse) through a misconfigured stream.
        await js.publish(self.subject(event.tenant_id, event.topic, tier), json.dumps(body).encode(),
                         stream=stream, headers=headers)

    async def close(self) -> None:
        if self._nc is not None and not self._nc.is_closed:
            await self._nc.drain()


def _token(tenant_id: str) -> str:
    if not _TOKEN.match(tenant_id):
        raise ValueError(f"tenant id {tenant_id!r} cannot be a NATS subject token")
    return tenant_id
