"""Writing to the outbox. Delivery (dispatcher, retries, dead letters) builds on these rows."""
from __future__ import annotations

import json
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from stalela.kit.ids import new_id
from stalela.outbox.models import OutboxEvent


def enqueue(session: AsyncSession, tenant_id: str, topic: str, payload: dict[str, Any]) -> OutboxEvent:
    event = OutboxEvent(tenant_id=tenant_id, id=new_id("evt"), topic=topic,
                        payload=json.dumps(payload, separators=(",", ":"), default=str))
    session.add(event)
    return event
