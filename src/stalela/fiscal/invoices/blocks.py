"""Number blocks: numbers of a series handed to an offline device, carved under the same locks as online
sealing (the tenant's log, then the series), so online numbers and blocks never overlap and leave no
hole (docs/offline.md). The ``number_block`` ledger event takes the block's place in the series chain."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from stalela.config import Settings
from stalela.db.base import utcnow
from stalela.errors import Conflict, ValidationFailed
from stalela.fiscal.core import offline as core_offline
from stalela.fiscal.invoices.models import NumberBlock
from stalela.fiscal.invoices.repository import NumberBlockRepository, SeriesRepository
from stalela.fiscal.jurisdictions import get_jurisdiction
from stalela.fiscal.ledger.events import seal_events
from stalela.fiscal.ledger.service import LogAppender
from stalela.fiscal.signing import registry as keys
from stalela.kit.clock import rfc3339
from stalela.kit.ids import new_id
from stalela.tenancy.repository import OutletRepository, TenantRepository

MAX_BLOCK = 100_000


async def allocate_block(session: AsyncSession, settings: Settings, tenant_id: str, *, outlet_id: str,
                         invoice_type: str, size: int, device_id: str, credential_jti: str, device_key: str,
                         expires_at: datetime) -> tuple[NumberBlock, dict[str, Any]]:
    """Carve ``size`` numbers from the outlet's series for ``invoice_type``; returns the block and what a
    credential needs of it (series, numbering). Flushes, never commits. ``device_key``: the thumbprint."""
    if not 1 <= size <= MAX_BLOCK:
        raise ValidationFailed(f"a block holds 1 to {MAX_BLOCK} numbers", code="block_size_invalid", field="block_size")
    log = await LogAppender.open(session, tenant_id)  # lock order: the log, then the series (sealing.py)
    tenant = await TenantRepository(session).get(tenant_id)
    jurisdiction = get_jurisdiction(tenant.jurisdiction)
    outlet = (await OutletRepository(session).get_many({outlet_id})).get(outlet_id)
    if outlet is None:
        raise ValidationFailed("no such outlet", code="outlet_not_found", field="outlet_id")
    if outlet.status != "active":
        raise Conflict("the outlet is not active", code="outlet_inactive", field="outlet_id")
    code = jurisdiction.series_code(invoice_type)
    series = (await SeriesRepository(session).lock_series(tenant_id, [(outlet_id, code)]))[(outlet_id, code)]
    key = await keys.active_key(session, tenant_id)
    first, last = series.counter + 1, series.counter + size
    block_id, now = new_id("blk"), utcnow()
    numbering = {
        "series_code": code, "series_generation": series.generation, "series_first": series.first_counter,
        "outlet_code": outlet.code, "pos_number": outlet.pos_number,
        "fiscal_numbers": [jurisdiction.fiscal_number(outlet.code, outlet.pos_number, invoice_type, n, series.generation)
                           for n in (first, last)],
    }
    payload = core_offline.record_payload(
        core_offline.BLOCK, tenant_id=tenant_id, outlet_id=outlet_id, series_id=series.id, block_id=block_id,
        key_id=key.id, prev_hash=series.last_hash, at=rfc3339(now), first=first, last=last, device_id=device_id,
        credential=credential_jti, device_key=device_key, expires_at=rfc3339(expires_at),
        fiscal_numbers=numbering["fiscal_numbers"])
    (event,) = await seal_events(session, settings, log, key, [payload])
    series.counter, series.last_hash, series.updated_at = last, event.seal_hash, now
    chain = core_offline.BlockChain.open(block_id, first, last, event.seal_hash)
    block = NumberBlock(tenant_id=tenant_id, id=block_id, outlet_id=outlet_id, series_id=series.id, device_id=device_id,
                        credential_jti=credential_jti, first=first, last=last, anchor_hash=event.seal_hash,
                        allocated_at=now, expires_at=expires_at, status="open", state=json.dumps(chain.as_json()),
                        updated_at=now)
    session.add(block)
    await log.write()
    await session.flush()
    return block, {**numbering, "series_id": series.id, "jurisdiction": jurisdiction.code, "seller_tax_id": tenant.tax_id,
                   "anchor": event.seal_hash, "event_id": event.id}


def chain_of(block: NumberBlock) -> core_offline.BlockChain:
    return core_offline.BlockChain.from_json(json.loads(block.state))


def keep_chain(block: NumberBlock, chain: core_offline.BlockChain) -> None:
    """Store where the block stands (the caller holds its lock); closed once every number is accounted for."""
    block.state = json.dumps(chain.as_json())
    # Closed: every number is merged, refused or voided (a late invoice may still un-void a voided one).
    block.status = "closed" if chain.closed else "open"
    block.updated_at = utcnow()


async def lock_block(session: AsyncSession, block_id: str) -> NumberBlock | None:
    return await NumberBlockRepository(session).get_for_update(block_id)
