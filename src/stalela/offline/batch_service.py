"""Returned batches: every invoice a device sealed offline is verified, then merged into the ledger, refused
with a sealed record, or held (docs/offline.md, "Returning invoices"). The caller's transaction; flushes,
never commits.

Order of work: the credential (verified at its own ``nbf``: an expired credential's invoices still merge
when they were sealed inside its validity), then each invoice's signature and recomputation (CPU, before
any lock), then, under the sealing locks (the tenant's log, then the block's row), forks, the block chain
and the rules, in device order. Leaves enter the tenant's Merkle log in that order and a checkpoint
follows.

A fork (a different device-signed invoice at a number already used) merges nothing: the answer is 409
``offline_number_reused`` with a cloud-signed fork proof, and the credential is revoked (reason ``fork``).
So does an invoice at a number the device returned unused (409 ``offline_number_returned``, reason
``equivocation``, the proof pairing its return statement with the invoice). Each proof is an
``offline.fork_detected`` outbox event.
That answer is returned, not raised, by this module, so the request's transaction commits the proof and
the revocation; the endpoint raises it after the commit.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from stalela.auth.principal import Principal
from stalela.config import Settings
from stalela.db.base import utcnow
from stalela.db.session import Database
from stalela.errors import Conflict, Forbidden, NotFound, StalelaError, ValidationFailed
from stalela.fiscal.core import offline as core
from stalela.fiscal.core.seal import b64url_decode, build_seal, canonical_bytes
from stalela.fiscal.invoices import offline_merge
from stalela.fiscal.invoices.blocks import chain_of, keep_chain, lock_block
from stalela.fiscal.invoices import verification
from stalela.fiscal.invoices.repository import InvoiceRepository
from stalela.fiscal.jurisdictions import get_jurisdiction
from stalela.fiscal.ledger.events import render_event, seal_events
from stalela.fiscal.ledger.service import LogAppender, create_checkpoint
from stalela.fiscal.signing import registry as keys
from stalela.fiscal.signing.repository import SigningKeyRepository
from stalela.fiscal.subjects.service import SubjectErased
from stalela.kit.clock import rfc3339
from stalela.kit.ids import new_id
from stalela.offline import fork_proofs, void_service
from stalela.offline.batch_checks import ITEM_CODES, Failure, Prepared, limits, prepare, rule_failure
from stalela.offline.batch_repository import (
    BatchRepository,
    BlockReturnRepository,
    ForkProofRepository,
    ReceiptRepository,
)
from stalela.offline.batch_schemas import BatchCreate
from stalela.offline.device_repository import CredentialRepository
from stalela.offline.models import DeviceCredential, ForkProof, OfflineBatch, OfflineReceipt
from stalela.outbox.service import enqueue
from stalela.tenancy.context import bind_platform, bind_tenant
from stalela.tenancy.repository import OutletRepository

FORK_TOPIC = "offline.fork_detected"  # webhooks.events.OFFLINE_FORK_DETECTED
REUSED_CODE, RETURNED_CODE = "offline_number_reused", "offline_number_returned"
YIELD_EVERY = 8  # a 1,000-invoice batch gives the event loop back this often (see sealing.YIELD_EVERY)
CHECKPOINT_REASON = "offline_merge"


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    error: StalelaError | None = None  # the fork's 409, raised by the endpoint once committed


def digest(body: BatchCreate) -> str:
    """The batch's identity: SHA-256 of its parsed body with sorted keys (orjson: RFC 8785 costs a third of
    a 1,000-invoice merge here, and only equality matters). The document is ``body.model_dump(mode="json",
    exclude_unset=True, by_alias=True)``, built by hand: its free-form members are JSON already, and
    pydantic's walk through them cost more than the hash."""
    def unset_dropped(model: Any) -> dict[str, Any]:
        return {(info.alias or name): getattr(model, name) for name, info in type(model).model_fields.items()
                if name in model.model_fields_set}
    document = unset_dropped(body)
    document["invoices"] = [unset_dropped(item) for item in body.invoices]
    return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()


def invoice_ids(body: BatchCreate) -> list[str]:
    """The invoice ids the device chose (unverified: for the look-up of ids other tenants hold)."""
    ids = [(item.seal.get("payload") or {}).get("invoice_id") if isinstance(item.seal.get("payload"), dict) else None
           for item in body.invoices]
    return [i for i in ids if isinstance(i, str) and re.fullmatch(r"inv_[0-9a-z]{26}", i)]


async def verify(session: AsyncSession, principal: Principal, token: str) -> tuple[dict[str, Any], DeviceCredential]:
    """The credential's claims and its row. Checked at its own ``nbf`` (signature, typ, lifetime, shape);
    the invoices' times are checked against its validity one by one."""
    issuer = {k.id: json.loads(k.public_jwk) for k in await SigningKeyRepository(session).all_keys()}
    try:
        claims = core.verify_credential(token, issuer.get, _claimed_nbf(token))
    except core.CredentialInvalid as exc:
        raise ValidationFailed(str(exc), code=exc.code, field="credential") from exc
    row = await CredentialRepository(session).get(claims["jti"])
    if claims["tenant_id"] != principal.tenant_id or row is None or row.token != token:
        raise NotFound("this credential was not issued to this tenant", code="offline_credential_unknown",
                       field="credential")
    if not principal.can_use_outlet(claims["outlet"]):
        raise Forbidden("this API key may only return invoices of its own outlet", code="api_key_outlet_restricted",
                        field="credential")
    return claims, row


def _claimed_nbf(token: str) -> datetime:
    try:
        return datetime.fromtimestamp(int(json.loads(b64url_decode(token.split(".")[1]))["nbf"]), timezone.utc)
    except (ValueError, KeyError, IndexError, TypeError, OverflowError):
        return utcnow()  # unreadable: verify_credential says why


def numbering(claims: dict[str, Any], device_jwk: dict[str, Any]) -> offline_merge.Numbering:
    return offline_merge.Numbering(
        jurisdiction=claims.get("jurisdiction", ""), tenant_id=claims["tenant_id"],
        seller_tax_id=claims.get("seller_tax_id"), outlet_id=claims["outlet"], outlet_code=claims.get("outlet_code", ""),
        pos_number=claims.get("pos_number"), series_id=claims["series"],
        series_generation=claims.get("series_generation", 1), series_first=claims.get("series_first", 1),
        device_key=device_jwk["kid"], offline=core.offline_marker(claims["jti"], claims["block"]["id"], claims["sub"]))


async def receive_batch(db: Database, settings: Settings, principal: Principal, body: BatchCreate) -> Answer:
    """``POST /v1/offline/batches``: ``receive`` in the tenant's transaction, committed whatever the answer
    (a fork's proof and revocation stay; the caller raises ``answer.error`` after)."""
    ids = invoice_ids(body)
    foreign: frozenset[str] = frozenset()
    if ids:
        # Invoice ids are unique across the database, other tenants' included, which the tenant's own
        # transaction cannot see (row-level security): a short platform read says which are taken.
        async with db.transaction(readonly=True) as session:
            await bind_platform(session)
            foreign = frozenset(await ids_in_use(session, ids))
    async with db.transaction() as session:
        await bind_tenant(session, principal.tenant_id)
        return await receive(session, settings, principal, body, foreign_ids=foreign)


async def receive(session: AsyncSession, settings: Settings, principal: Principal, body: BatchCreate, *,
                  foreign_ids: frozenset[str] = frozenset()) -> Answer:
    """``foreign_ids``: invoice ids other tenants already hold (ids are unique across the database)."""
    claims, _ = await verify(session, principal, body.credential)
    device_jwk = core.device_public_jwk(claims["cnf"]["jwk"])
    plan = numbering(claims, device_jwk)
    prepared = []
    for index, item in enumerate(body.invoices):
        if index % YIELD_EVERY == YIELD_EVERY - 1:
            await asyncio.sleep(0)
        prepared.append(prepare(index, item, plan, device_jwk, claims["block"]))

    tenant_id = principal.tenant_id
    log = await LogAppender.open(session, tenant_id)  # lock order: the log, then the block (sealing.py)
    batches = BatchRepository(session)
    fingerprint = digest(body)
    stored = await batches.by_digest(fingerprint)
    if stored is not None and (stored.held == 0 or stored.status_code != 200):
        return replay(stored)
    block = await lock_block(session, claims["block"]["id"])
    credential = await CredentialRepository(session).get_for_update(claims["jti"])  # revoked_at as of now
    if block is None or credential is None:
        raise NotFound("this credential's block is unknown", code="offline_credential_unknown", field="credential")
    receipts = await ReceiptRepository(session).at(block.id, [p.counter for p in prepared if p.held is None])
    batch_id = stored.id if stored is not None else new_id("obt")
    fork = find_fork(prepared, receipts)
    returned = find_returned(prepared, chain_of(block)) if fork is None else None
    if fork is not None:
        answer = await _fork(session, settings, claims, body.credential, credential, batch_id, *fork)
    elif returned is not None:
        answer = await _equivocation(session, settings, claims, body.credential, credential, batch_id, returned)
    else:
        merge = _Merge(session, settings, tenant_id, log, claims, plan, block, credential, batch_id)
        answer = await merge.run(prepared, receipts, foreign_ids)
        if body.return_ is not None:
            answer.body["return"] = await _return(session, settings, principal, block.id, body.return_)
    await _store(batches, stored, tenant_id, batch_id, claims["jti"], fingerprint, answer)
    return answer


async def _return(session: AsyncSession, settings: Settings, principal: Principal, block_id: str,
                  statement: dict[str, Any]) -> dict[str, Any]:
    """The unused tail given back with the batch, after its invoices (void_service, as its own route does).
    A statement that does not fit is answered for itself: the merged invoices stay merged (every refusal
    of the void service comes before it writes anything)."""
    try:
        outcome = await void_service.return_tail(session, settings, principal, block_id, statement)
    except StalelaError as exc:
        return {"status": exc.status, "problem": exc.problem()}
    return {"status": 201 if outcome.created else 200, "void": render_event(outcome.event)}


def find_fork(prepared: list[Prepared], receipts: dict[int, OfflineReceipt]
              ) -> tuple[int, dict[str, Any], dict[str, Any], int] | None:
    """The first number with two different device-signed invoices: (number, the seal the cloud had or saw
    first, the other, the other's index). Only seals that verify count: anything else proves nothing."""
    seen: dict[int, Prepared] = {}
    for p in prepared:
        if p.held is not None or p.counter is None:
            continue
        had = receipts.get(p.counter)
        if had is not None and had.device_hash != p.hash:
            return p.counter, json.loads(had.seal), p.seal, p.index
        first = seen.setdefault(p.counter, p)
        if first.hash != p.hash:
            return p.counter, first.seal, p.seal, p.index
    return None


def find_returned(prepared: list[Prepared], chain: core.BlockChain) -> Prepared | None:
    """The first invoice the device signed at a number it gave back unused (a ``returned`` void): the chain
    says ``offline_number_returned`` for it, whatever un-void window is open."""
    probe = core.BlockChain.from_json({**chain.as_json(), "window": None})
    for p in prepared:
        if p.held is None and p.counter is not None and p.prev_hash is not None \
                and probe.place(p.counter, p.prev_hash) == RETURNED_CODE:
            return p
    return None


async def _prove(session: AsyncSession, settings: Settings, claims: dict[str, Any], token: str, counter: int,
                 first: dict[str, Any], second: dict[str, Any], code: str, conflict: str | None = None) -> ForkProof:
    """A cloud-signed fork proof of two device statements at one number, stored, and its webhook event
    (``offline.fork_detected``) in the same transaction."""
    tenant_id, now = claims["tenant_id"], utcnow()
    key = await keys.active_key(session, tenant_id)
    payload = fork_proofs.payload(tenant_id=tenant_id, credential=token, claims=claims, counter=counter, first=first,
                                  second=second, key_id=key.id, at=rfc3339(now), conflict=conflict)
    signed = canonical_bytes(payload)
    seal = build_seal(payload, await keys.sign(settings, key, signed), key.id, canonical_payload=signed)
    proof = ForkProof(tenant_id=tenant_id, id=new_id("frk"), credential_jti=claims["jti"], block_id=claims["block"]["id"],
                      counter=counter, key_id=key.id, seal_hash=seal["hash"], signature=seal["signature"],
                      payload=signed.decode(), created_at=now)
    await ForkProofRepository(session).add(proof)
    enqueue(session, tenant_id, FORK_TOPIC, {
        "tenant_id": tenant_id, "credential": claims["jti"], "block_id": claims["block"]["id"],
        "device_id": claims["sub"], "outlet_id": claims["outlet"], "counter": counter, "fork_proof_id": proof.id,
        "code": code, "detected_at": rfc3339(now)})
    return proof


def _revoke(credential: DeviceCredential, reason: str) -> None:
    if credential.revoked_at is None:  # a revocation already made keeps its time and reason
        credential.revoked_at, credential.revocation_reason = utcnow(), reason


async def _fork(session: AsyncSession, settings: Settings, claims: dict[str, Any], token: str,
                credential: DeviceCredential, batch_id: str, counter: int, first: dict[str, Any],
                second: dict[str, Any], index: int) -> Answer:
    proof = await _prove(session, settings, claims, token, counter, first, second, REUSED_CODE)
    _revoke(credential, "fork")
    await session.flush()
    error = Conflict(f"number {counter} of block {claims['block']['id']} was already used by another invoice the "
                     "device signed: nothing of this batch was merged and the credential is revoked",
                     code=REUSED_CODE, field=f"invoices[{index}].seal",
                     extra={"batch_id": batch_id, "counter": counter, "fork_proof": render_fork_proof(proof)})
    return Answer(409, error.problem(), error)


async def _equivocation(session: AsyncSession, settings: Settings, claims: dict[str, Any], token: str,
                        credential: DeviceCredential, batch_id: str, p: Prepared) -> Answer:
    """An invoice at a number the device signed it would never use (it returned it): equivocation, answered
    like a fork. The proof pairs the stored return statement with the invoice (none for a statement voided
    before statements were kept: the void record holds only its hash)."""
    assert p.counter is not None
    statement = await BlockReturnRepository(session).covering(claims["block"]["id"], p.counter)
    proof = None
    if statement is not None:
        proof = await _prove(session, settings, claims, token, p.counter, json.loads(statement.statement), p.seal,
                             RETURNED_CODE, conflict=fork_proofs.RETURNED)
    _revoke(credential, "equivocation")
    await session.flush()
    error = Conflict(f"number {p.counter} of block {claims['block']['id']} was given back unused by a statement the "
                     "device signed, and the device signed an invoice at it: nothing of this batch was merged and the "
                     "credential is revoked", code=RETURNED_CODE, field=f"invoices[{p.index}].seal",
                     extra={"batch_id": batch_id, "counter": p.counter,
                            "fork_proof": render_fork_proof(proof) if proof is not None else None})
    return Answer(409, error.problem(), error)


class _Merge:
    """One batch's walk through its block, in device order, under the locks."""

    def __init__(self, session: AsyncSession, settings: Settings, tenant_id: str, log: LogAppender,
                 claims: dict[str, Any], plan: offline_merge.Numbering, block: Any, credential: DeviceCredential,
                 batch_id: str) -> None:
        self.session, self.settings, self.tenant_id, self.log = session, settings, tenant_id, log
        self.claims, self.plan, self.block, self.batch_id = claims, plan, block, batch_id
        self.chain = chain_of(block)
        self.now = utcnow()
        self.limits = limits(claims, block.allocated_at, self.now,
                             timedelta(seconds=settings.offline_clock_skew_seconds), credential.revoked_at)
        self.writer = offline_merge.OfflineInvoices(session, settings, tenant_id, log)
        self.receipts: list[dict[str, Any]] = []
        self.made: dict[int, dict[str, Any]] = {}  # this batch's receipts by number
        self.key: Any = None
        self.outlet: Any = None
        self.ids_taken: set[str] = set()
        self.references: set[tuple[str, str]] = set()
        self.size = log.tree.size

    async def run(self, prepared: list[Prepared], receipts: dict[int, OfflineReceipt], foreign: frozenset[str]) -> Answer:
        self.key = await keys.active_key(self.session, self.tenant_id)
        self.outlet = (await OutletRepository(self.session).get_many({self.plan.outlet_id}))[self.plan.outlet_id]
        ids = [str(p.payload.get("invoice_id")) for p in prepared if p.held is None]
        self.ids_taken = await self.writer.ids_taken(ids) | (set(foreign) & set(ids))
        self.references = await self.writer.references_taken(
            {(self.plan.outlet_id, p.request.reference) for p in prepared
             if p.request is not None and p.request.reference is not None})
        results = []
        for position, p in enumerate(prepared):
            if position % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)
            results.append(await self._one(p, prepared, receipts))
        await self.writer.flush(self.now)
        await ReceiptRepository(self.session).insert_many(self.receipts)
        keep_chain(self.block, self.chain)
        await self.log.write()
        await self.session.flush()
        checkpoint = None
        if self.log.tree.size > self.size:
            cp = await create_checkpoint(self.session, self.settings, self.tenant_id, CHECKPOINT_REASON)
            checkpoint = {"id": cp.id, "tree_size": cp.tree_size, "root_hash": cp.root_hash}
        counts = {o: sum(1 for r in results if r["outcome"] == o) for o in ("merged", "refused", "held")}
        body = {"id": self.batch_id, "object": "offline_batch", "credential": self.claims["jti"],
                "block_id": self.block.id, "device_id": self.claims["sub"], "received_at": rfc3339(self.now),
                **counts, "block": self._expected(), "checkpoint": checkpoint, "data": results}
        return Answer(200, body)

    def _expected(self) -> dict[str, Any]:
        """Where the block's chain continues: the number (and link) the next invoice must have."""
        if self.chain.window is not None:
            return {"next": self.chain.window["next"], "head": self.chain.window["head"], "closed": False}
        return {"next": self.chain.next, "head": self.chain.head, "closed": self.chain.closed}

    async def _one(self, p: Prepared, prepared: list[Prepared], receipts: dict[int, OfflineReceipt]) -> dict[str, Any]:
        if p.held is not None:
            return self._held(p, p.held)
        assert p.counter is not None and p.prev_hash is not None and p.hash is not None
        done = self.made.get(p.counter) or _receipt_view(receipts.get(p.counter))
        if done is not None:  # the same invoice again (find_fork ruled out another one): its receipt
            return {**done, "index": p.index, "replayed": True}
        late = self.chain.window is not None
        reason = self.chain.place(p.counter, p.prev_hash)
        if reason == "offline_number_voided":
            reason = await self._unvoid(p, prepared)
            late = True
        if reason is not None:
            code = ITEM_CODES["chain"] if reason == "offline_chain_broken" else \
                ITEM_CODES["outside"] if reason == "offline_number_outside_block" else ITEM_CODES["gap"]
            return self._held(p, Failure(code, f"the block's chain expects number {self._expected()['next']} "
                                               f"({reason})"))
        failure = rule_failure(p, self.limits) or self._free(p)
        sold_to = None
        if failure is None:
            try:
                sold_to = await self.writer.seal_buyer(p.request, p.recomputed.buyer, p.salt)
            except SubjectErased as exc:
                failure = Failure(exc.code, exc.detail)
        if failure is not None:
            return await self._refuse(p, failure, late)
        return await self._merge(p, sold_to, late)

    def _free(self, p: Prepared) -> Failure | None:
        """The invoice id and the reference are not taken (by any invoice, or earlier in this batch)."""
        invoice_id = p.payload["invoice_id"]
        if invoice_id in self.ids_taken:
            return Failure(ITEM_CODES["invoice_id_taken"], f"invoice id {invoice_id} is already taken")
        reference = p.request.reference
        if reference is not None and (self.plan.outlet_id, reference) in self.references:
            return Failure(ITEM_CODES["reference"], f"reference {reference} was already sealed for this outlet")
        return None

    async def _unvoid(self, p: Prepared, prepared: list[Prepared]) -> str | None:
        """A late invoice in a voided range: seal a ``numbers_unvoided`` record reopening the run of late
        invoices this batch brings (consecutive numbers, each chained to the one before), then place it."""
        void = self.chain.voided(p.counter)
        assert void is not None
        last, previous = p.counter, p
        for nxt in prepared[p.index + 1:]:
            if nxt.held is not None or nxt.counter != last + 1 or nxt.prev_hash != previous.hash or nxt.counter > void.last:
                break
            last, previous = nxt.counter, nxt
        reason = self.chain.unvoid(void.record_hash, p.counter, last, p.prev_hash)
        if reason is not None:
            return "offline_chain_broken" if p.counter == void.reopened_through + 1 else "offline_number_gap"
        await self._record(core.UNVOID, void.head, void=void.record_hash, first=p.counter, last=last)
        return self.chain.place(p.counter, p.prev_hash)

    async def _record(self, kind: str, prev_hash: str, **fields: Any) -> Any:
        payload = core.record_payload(kind, tenant_id=self.tenant_id, outlet_id=self.plan.outlet_id,
                                      series_id=self.plan.series_id, block_id=self.block.id, key_id=self.key.id,
                                      prev_hash=prev_hash, at=rfc3339(self.now), **fields)
        (event,) = await seal_events(self.session, self.settings, self.log, self.key, [payload])
        return event

    def _held(self, p: Prepared, failure: Failure) -> dict[str, Any]:
        return {"index": p.index, "counter": p.counter, "device_hash": p.hash, "outcome": "held", "code": failure.code,
                "detail": failure.detail, "expected": self._expected()}

    def _number(self, p: Prepared) -> str:
        type_ = p.request.type if p.request is not None else str(p.payload.get("type"))
        return offline_merge.fiscal_number(self.plan, type_, p.counter)

    async def _refuse(self, p: Prepared, failure: Failure, late: bool) -> dict[str, Any]:
        fiscal_number = self._number(p)
        event = await self._record(core.REFUSAL, p.prev_hash, counter=p.counter, fiscal_number=fiscal_number,
                                   device_hash=p.hash, code=failure.code)
        self.chain.advance(p.counter, p.hash)
        receipt = self._receipt(p, "refused", code=failure.code, event_id=event.id)
        return {**receipt, "detail": failure.detail, "late": late}

    async def _merge(self, p: Prepared, sold_to: Any, late: bool) -> dict[str, Any]:
        series_code = get_jurisdiction(self.plan.jurisdiction).series_code(p.request.type)
        await self.writer.add(self.outlet, series_code, p.request, p.recomputed, p.seal, sold_to, issued=p.issued,
                              merged_at=self.now, late=late, signed=p.signed)
        self.chain.advance(p.counter, p.hash)
        self.ids_taken.add(p.payload["invoice_id"])
        if p.request.reference is not None:
            self.references.add((self.plan.outlet_id, p.request.reference))
        return {**self._receipt(p, "merged", invoice_id=p.payload["invoice_id"]), "late": late}

    def _receipt(self, p: Prepared, outcome: str, *, code: str | None = None, invoice_id: str | None = None,
                 event_id: str | None = None) -> dict[str, Any]:
        receipt_id = new_id("orc")
        self.receipts.append(dict(
            tenant_id=self.tenant_id, id=receipt_id, block_id=self.block.id, credential_jti=self.claims["jti"],
            counter=p.counter, device_hash=p.hash, seal=_seal_text(p), outcome=outcome, code=code,
            invoice_id=invoice_id, event_id=event_id, batch_id=self.batch_id, created_at=self.now))
        view = {"index": p.index, "counter": p.counter, "fiscal_number": self._number(p), "device_hash": p.hash,
                "outcome": outcome, "code": code, "receipt_id": receipt_id, "invoice_id": invoice_id,
                "event_id": event_id, "replayed": False}
        self.made[p.counter] = view
        return view


def _seal_text(p: Prepared) -> str:
    """The device's seal as JSON, around the payload bytes already verified (not encoded again)."""
    seal = p.seal
    tail = orjson.dumps({k: seal[k] for k in ("hash", "signature", "key_id", "algorithm")}).decode()
    return '{"payload":' + p.signed.decode() + "," + tail[1:] if p.signed is not None else json.dumps(seal)


def _receipt_view(r: OfflineReceipt | None) -> dict[str, Any] | None:
    if r is None:
        return None
    payload = json.loads(r.seal).get("payload") or {}
    return {"counter": r.counter, "fiscal_number": payload.get("fiscal_number"), "device_hash": r.device_hash,
            "outcome": r.outcome, "code": r.code, "receipt_id": r.id, "invoice_id": r.invoice_id,
            "event_id": r.event_id, "late": None}


async def _store(batches: BatchRepository, stored: OfflineBatch | None, tenant_id: str, batch_id: str, jti: str,
                 fingerprint: str, answer: Answer) -> None:
    """Keep the answer: the same batch again gets it. A batch that had held invoices is tried again when it
    comes back (its other invoices answer their receipts) and its answer replaced."""
    body = answer.body
    counts = {k: body.get(k, 0) for k in ("merged", "refused", "held")}
    if stored is None:
        await batches.add(OfflineBatch(tenant_id=tenant_id, id=batch_id, credential_jti=jti, digest=fingerprint,
                                       invoices=len(body.get("data", [])), status_code=answer.status,
                                       response=orjson.dumps(body).decode(), received_at=utcnow(), **counts))
        return
    stored.status_code, stored.response = answer.status, orjson.dumps(body).decode()
    stored.merged, stored.refused, stored.held = counts["merged"], counts["refused"], counts["held"]
    await batches.session.flush()


def replay(stored: OfflineBatch) -> Answer:
    body = json.loads(stored.response)
    if stored.status_code == 200:
        return Answer(200, body)
    error = Conflict(body.get("detail"), code=body.get("code"), field=body.get("field"),
                     extra={k: body[k] for k in ("batch_id", "counter", "fork_proof") if k in body})
    return Answer(stored.status_code, body, error)


async def get_batch(session: AsyncSession, principal: Principal, batch_id: str) -> Answer:
    stored = await BatchRepository(session).get(batch_id)
    if stored is None or not await _may_see(session, principal, stored.credential_jti):
        raise NotFound("no such batch", code="offline_batch_not_found", field="batch_id")
    answer = replay(stored)
    return Answer(200, answer.body)  # reading a fork's answer is not itself a conflict


async def _may_see(session: AsyncSession, principal: Principal, jti: str) -> bool:
    if not principal.restricted:
        return True
    credential = await CredentialRepository(session).get(jti)
    return credential is not None and principal.can_use_outlet(credential.outlet_id)


async def list_receipts(session: AsyncSession, principal: Principal, *, block_id: str | None, outcome: str | None,
                        limit: int, starting_after: str | None) -> tuple[list[OfflineReceipt], bool]:
    outlets = principal.outlet_ids if principal.outlet_id is None else frozenset({principal.outlet_id})
    return await ReceiptRepository(session).search(block_id=block_id, outcome=outcome, outlets_only=outlets,
                                                   limit=limit, starting_after=starting_after)


async def get_fork_proof(session: AsyncSession, principal: Principal, proof_id: str) -> ForkProof:
    proof = await ForkProofRepository(session).get(proof_id)
    if proof is None or not await _may_see(session, principal, proof.credential_jti):
        raise NotFound("no such fork proof", code="fork_proof_not_found", field="proof_id")
    return proof


def render_receipt(r: OfflineReceipt) -> dict[str, Any]:
    return {"id": r.id, "object": "offline_receipt", "block_id": r.block_id, "credential": r.credential_jti,
            "counter": r.counter, "device_hash": r.device_hash, "outcome": r.outcome, "code": r.code,
            "invoice_id": r.invoice_id, "event_id": r.event_id, "batch_id": r.batch_id, "created": rfc3339(r.created_at)}


def render_fork_proof(proof: ForkProof) -> dict[str, Any]:
    return {"id": proof.id, "object": "fork_proof", "credential": proof.credential_jti, "block_id": proof.block_id,
            "counter": proof.counter, "created": rfc3339(proof.created_at),
            "seal": {"payload": json.loads(proof.payload), "hash": proof.seal_hash, "signature": proof.signature,
                     "key_id": proof.key_id, "algorithm": "ES256"}}


async def ids_in_use(session: AsyncSession, ids: list[str]) -> set[str]:
    """Which of these invoice ids any tenant of this database holds (a platform-bound session)."""
    return {inv.id for inv in await InvoiceRepository(session).many(ids)}


async def device_key(session: AsyncSession, tenant_id: str, jti: str) -> dict[str, Any] | None:
    """The key an offline invoice verifies with (the public verification page): its credential's ``cnf`` key,
    once the credential itself verifies with the tenant's keys, at its ``nbf`` (a receipt outlives ``exp``).
    The page's session may read every tenant: both reads are checked against ``tenant_id``."""
    credential = await CredentialRepository(session).get(jti)
    if credential is None or credential.tenant_id != tenant_id:
        return None
    issuer = {k.id: json.loads(k.public_jwk) for k in await SigningKeyRepository(session).all_keys()
              if k.tenant_id == tenant_id}
    try:
        claims = core.verify_credential(credential.token, issuer.get, _claimed_nbf(credential.token))
        return core.device_public_jwk(claims["cnf"]["jwk"])
    except (core.CredentialInvalid, ValueError, KeyError, TypeError):
        return None


verification.device_keys = device_key  # registered when the app imports the offline routes
