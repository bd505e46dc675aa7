"""Voids: the numbers of a block that will never carry an invoice, sealed as a ``numbers_voided`` record so
the series has no silent gap (NFC-e's inutilização, Portugal's finalizarSerie; docs/offline.md).

Two ways a block's unused tail is voided:
- the device gives it back (``return_tail``): a statement signed by the credential's ``cnf`` key, whose
  ``first``/``prev_hash`` must be exactly where the block stands; reason ``returned``;
- nobody does (``void_expired``): the scheduler voids what is left once the credential's ``exp`` plus
  ``STALELA_OFFLINE_VOID_GRACE_HOURS`` has passed; reason ``expired``.

Both run under the sealing lock order (the tenant's log, then the block row) in the caller's transaction,
re-read the block's state under its lock, and do nothing when the tail is already accounted for: two
workers, or a return racing the scheduler, void a number once. Flushes, never commits.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from stalela.auth.principal import Principal
from stalela.config import Settings
from stalela.db.base import utcnow
from stalela.errors import Conflict, NotFound, ValidationFailed
from stalela.fiscal.core import offline as core
from stalela.fiscal.core.seal import b64url_decode, verify_seal
from stalela.fiscal.invoices import blocks
from stalela.fiscal.invoices.models import NumberBlock
from stalela.fiscal.ledger.events import render_event, seal_events
from stalela.fiscal.ledger.models import LedgerEvent
from stalela.fiscal.ledger.service import LogAppender, create_checkpoint
from stalela.fiscal.reports.voids import fiscal_numbers
from stalela.fiscal.signing import registry as keys
from stalela.kit.clock import rfc3339
from stalela.kit.ids import new_id
from stalela.offline.batch_repository import BlockReturnRepository
from stalela.offline.models import BlockReturn
from stalela.offline.void_repository import BlockEventRepository, BlockRepository, CredentialRepository
from stalela.outbox.service import enqueue

TOPIC = "offline.numbers_voided"  # webhooks.events.OFFLINE_NUMBERS_VOIDED
EXPIRED, RETURNED = "expired", "returned"
# BlockChain's refusals of a void, as problem codes (409: the block is not where the statement says).
CHAIN_CODES = {"offline_void_misplaced": "offline_void_misplaced", "offline_window_open": "offline_window_open"}


@dataclass
class VoidOutcome:
    block: NumberBlock
    event: LedgerEvent
    created: bool


def grace(settings: Settings) -> timedelta:
    return timedelta(hours=settings.offline_void_grace_hours)


# --------------------------------------------------------------------------------------- voiding


async def _locked(session: AsyncSession, tenant_id: str, block_id: str,
                  read: NumberBlock | None = None) -> tuple[LogAppender, NumberBlock | None]:
    """The sealing lock order: the tenant's log first, then the block row (fiscal.invoices.blocks).
    ``read``: the block as read before the lock, whose state must be reloaded from the locked row."""
    log = await LogAppender.open(session, tenant_id)
    if read is not None:
        session.expire(read)
    return log, await blocks.lock_block(session, block_id)


async def _seal_void(session: AsyncSession, settings: Settings, log: LogAppender, block: NumberBlock,
                     chain: core.BlockChain, *, first: int, last: int, prev_hash: str, reason: str,
                     statement_hash: str | None = None) -> LedgerEvent:
    key = await keys.active_key(session, block.tenant_id)
    fields: dict[str, Any] = {"first": first, "last": last,
                              "fiscal_numbers": await fiscal_numbers(session, block.tenant_id, block.outlet_id,
                                                                     block.series_id, first, last),
                              "reason": reason}
    if statement_hash is not None:
        fields["return"] = statement_hash
    payload = core.record_payload(core.VOID, tenant_id=block.tenant_id, outlet_id=block.outlet_id,
                                  series_id=block.series_id, block_id=block.id, key_id=key.id,
                                  prev_hash=chain.head, at=rfc3339(utcnow()), **fields)
    refused = chain.void(first, last, prev_hash, core.signed_hash(payload), reason=reason)
    if refused is not None:
        raise Conflict(f"the block is not where the void says ({refused}): its next number is {chain.next}",
                       code=CHAIN_CODES.get(refused, "offline_void_misplaced"), field="payload.first",
                       extra={"next": chain.next, "head": chain.head})
    (event,) = await seal_events(session, settings, log, key, [payload])
    blocks.keep_chain(block, chain)
    await log.write()
    await session.flush()
    enqueue(session, block.tenant_id, TOPIC, {
        "block_id": block.id, "outlet_id": block.outlet_id, "device_id": block.device_id,
        "credential": block.credential_jti, "first": first, "last": last, "fiscal_numbers": fields["fiscal_numbers"],
        "reason": reason, "event_id": event.id, "record_hash": event.seal_hash, "voided_at": payload["at"]})
    # A signed tree head right away: the void is provable (inclusion) before the next periodic checkpoint.
    await create_checkpoint(session, settings, block.tenant_id, "offline_void")
    return event


async def void_expired(session: AsyncSession, settings: Settings, tenant_id: str, block_id: str,
                       now: datetime | None = None) -> LedgerEvent | None:
    """Void the unused tail of a block whose credential expired more than the grace ago; None when there
    is nothing to do (already voided or used up, not due, an un-void being filled)."""
    now = now or utcnow()
    log, block = await _locked(session, tenant_id, block_id)
    if block is None or block.status != "open" or block.expires_at + grace(settings) > now:
        return None
    chain = blocks.chain_of(block)
    tail = core.unused_tail(chain)
    if tail is None:
        return None
    return await _seal_void(session, settings, log, block, chain, first=tail[0], last=tail[1], prev_hash=chain.head,
                            reason=EXPIRED)


# --------------------------------------------------------------------------------------- returns


async def visible_block(session: AsyncSession, principal: Principal, block_id: str) -> NumberBlock:
    block = await BlockRepository(session).get(block_id)
    # Another outlet's block does not exist for a restricted key (as another tenant's does not).
    if block is None or not principal.can_use_outlet(block.outlet_id):
        raise NotFound("no such block", code="offline_block_not_found")
    return block


def _claims(token: str) -> dict[str, Any]:
    # Our own token, verified when it was issued: only its cnf key is read here.
    return json.loads(b64url_decode(token.split(".")[1]))


async def _device_key(session: AsyncSession, block: NumberBlock) -> dict[str, Any]:
    credential = await CredentialRepository(session).by_jti(block.credential_jti)
    if credential is None:
        raise Conflict("the block's credential is not on record", code="offline_credential_unknown")
    return core.device_public_jwk(_claims(credential.token)["cnf"]["jwk"])


def _check_statement(statement: dict[str, Any], block: NumberBlock, jwk: dict[str, Any]) -> dict[str, Any]:
    check = verify_seal(statement, jwk)
    if not check:
        raise ValidationFailed(f"the return statement does not verify with the credential's key: {check.reason}",
                               code="offline_return_signature", field="signature")
    payload = statement["payload"]
    expected = {"kind": core.RETURN, "tenant_id": block.tenant_id, "block_id": block.id,
                "credential": block.credential_jti}
    for name, value in expected.items():
        if payload.get(name) != value:
            raise ValidationFailed(f"payload.{name} must be {value!r}", code="offline_return_mismatch",
                                   field=f"payload.{name}")
    for name in ("first", "last"):
        if isinstance(payload.get(name), bool) or not isinstance(payload.get(name), int):
            raise ValidationFailed(f"payload.{name} is an integer", code="offline_return_mismatch",
                                   field=f"payload.{name}")
    if not isinstance(payload.get("prev_hash"), str) or not isinstance(payload.get("at"), str):
        raise ValidationFailed("payload.prev_hash and payload.at are strings", code="offline_return_mismatch",
                               field="payload.prev_hash")
    return payload


async def _earlier_answer(session: AsyncSession, block: NumberBlock, chain: core.BlockChain,
                          statement_hash: str) -> LedgerEvent | None:
    voids = await BlockEventRepository(session).by_hash(block.id, [v.record_hash for v in chain.voids])
    return next((e for e in voids if json.loads(e.payload).get("return") == statement_hash), None)


async def return_tail(session: AsyncSession, settings: Settings, principal: Principal, block_id: str,
                      statement: dict[str, Any]) -> VoidOutcome:
    """The device gives back ``first..last`` unused: checked, then voided with reason ``returned``. The same
    statement again gets the same record (``created`` False)."""
    block = await visible_block(session, principal, block_id)
    payload = _check_statement(statement, block, await _device_key(session, block))
    log, block = await _locked(session, block.tenant_id, block_id, read=block)
    chain = blocks.chain_of(block)
    earlier = await _earlier_answer(session, block, chain, statement["hash"])
    if earlier is not None:
        return VoidOutcome(block, earlier, False)
    event = await _seal_void(session, settings, log, block, chain, first=payload["first"], last=payload["last"],
                             prev_hash=payload["prev_hash"], reason=RETURNED,
                             statement_hash=statement["hash"])
    # The record carries only the statement's hash: the statement itself is kept, so an invoice the device
    # signs later at one of these numbers meets its own signature in a fork proof (batch_service).
    await BlockReturnRepository(session).add(BlockReturn(
        tenant_id=block.tenant_id, id=new_id("brt"), block_id=block.id, credential_jti=block.credential_jti,
        statement_hash=statement["hash"], statement=json.dumps(statement, separators=(",", ":")),
        first=payload["first"], last=payload["last"], event_id=event.id, created_at=utcnow()))
    return VoidOutcome(block, event, True)


# ------------------------------------------------------------------------------------------ views


def render_block(block: NumberBlock, events: list[LedgerEvent] | None = None) -> dict[str, Any]:
    """A block as the API shows it: its range, where it stands (``BlockChain``), and (one block) its events."""
    chain = blocks.chain_of(block)
    voided = sum(v.last - v.reopened_through for v in chain.voids)
    tail = core.unused_tail(chain)
    body: dict[str, Any] = {
        "id": block.id, "object": "number_block", "outlet_id": block.outlet_id, "series_id": block.series_id,
        "device_id": block.device_id, "credential": block.credential_jti, "first": block.first, "last": block.last,
        "anchor": block.anchor_hash, "allocated_at": rfc3339(block.allocated_at),
        "expires_at": rfc3339(block.expires_at), "status": block.status,
        "state": {"next": chain.next, "head": chain.head, "closed": chain.closed, "voided": voided,
                  "unused": tail[1] - tail[0] + 1 if tail else 0,
                  "voids": [{"record_hash": v.record_hash, "first": v.first, "last": v.last,
                             "reopened_through": v.reopened_through} for v in chain.voids],
                  "window": chain.window},
    }
    if events is not None:
        body["events"] = [render_event(e) for e in events]
    return body


async def get_block(session: AsyncSession, principal: Principal, block_id: str) -> dict[str, Any]:
    block = await visible_block(session, principal, block_id)
    return render_block(block, await BlockEventRepository(session).of_block(block.id))


async def list_blocks(session: AsyncSession, principal: Principal, *, device_id: str | None, status: str | None,
                      limit: int, starting_after: str | None) -> tuple[list[dict[str, Any]], bool]:
    outlets = ({principal.outlet_id} if principal.outlet_id else set(principal.outlet_ids or ())) \
        if principal.restricted else None
    rows, more = await BlockRepository(session).page_filtered(device_id=device_id, status=status, outlets=outlets,
                                                              limit=limit, starting_after=starting_after)
    return [render_block(b) for b in rows], more
