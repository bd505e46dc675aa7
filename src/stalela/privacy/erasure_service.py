"""Erasure (GDPR Art. 17) of a buyer or of a tenant's user, keeping the fiscal ledger verifiable.

Filing (``file_request``) stores only the pseudonyms of the identifiers given and queues
``privacy.erasure_requested``. Processing (``process``, the outbox handler) is idempotent and
resumable: stores outside the database are purged first (a retry purges again), then one transaction
tombstones the identifiers, restricts (inside fiscal retention) or shreds the subject keys, deletes
the operational rows, signs the receipt, appends the journal entry (before commit) and completes the
request. Sealed invoices and the Merkle log are never touched: the receipt shows both roots equal.
"""
from __future__ import annotations

import calendar
import json
from datetime import date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from stalela.audit.service import record
from stalela.auth.principal import Principal
from stalela.auth.users import normalize_email
from stalela.config import Settings
from stalela.db.base import utcnow
from stalela.db.session import Database
from stalela.errors import NotFound, ValidationFailed
from stalela.fiscal.core import merkle
from stalela.fiscal.invoices import service as invoices
from stalela.fiscal.invoices.models import Invoice
from stalela.fiscal.ledger.repository import MerkleRepository
from stalela.fiscal.reports import jobs as audit_exports
from stalela.fiscal.subjects import service as subjects
from stalela.kit.clock import rfc3339
from stalela.kit.ids import new_id
from stalela.observability.logging import get_logger
from stalela.observability.metrics import privacy_request
from stalela.outbox.service import enqueue
from stalela.privacy import export_service as exports
from stalela.privacy import journal
from stalela.privacy.erasure_models import ErasureRequest
from stalela.privacy.erasure_repository import ErasureRepository, ErasureTargets
from stalela.privacy.receipts import sign_receipt
from stalela.privacy.retention_service import active_holds, fiscal_retain_until
from stalela.tenancy.context import bind_platform, bind_tenant

log = get_logger("stalela.privacy.erasure")
TOPIC = "privacy.erasure_requested"
KINDS = ("tax_id", "email", "reference")

def _one_month_after(at: datetime) -> datetime:
    """Art. 12(3)'s "one month": the same day next month, or that month's last day (31 Jan → 28/29 Feb)."""
    year, month = (at.year + 1, 1) if at.month == 12 else (at.year, at.month + 1)
    return at.replace(year=year, month=month, day=min(at.day, calendar.monthrange(year, month)[1]))


def _pseudonyms(settings: Settings, tenant_id: str, subject: dict[str, str | None], *,
                users: bool = False) -> list[list[str]]:
    """Buyers' identifiers are hashed as sealed (``fiscal.subjects.crypto.identifiers``); users' e-mails
    as stored (normalized)."""
    out = []
    for kind in KINDS:
        value = subject.get(kind)
        if value:
            value = normalize_email(value) if users and kind == "email" else value
            out.append([kind, subjects.pseudonym(settings, tenant_id, kind, value)])
    if not out:
        raise ValidationFailed("name the data subject by email, tax_id or reference", code="subject_required",
                               field="subject")
    return out


async def file_request(session: AsyncSession, settings: Settings, principal: Principal,
                       subject: dict[str, str | None]) -> ErasureRequest:
    """A buyer's erasure, filed by the tenant's owner. Nothing about whether the buyer is known leaks
    in the answer (202 either way)."""
    pseudonyms = _pseudonyms(settings, principal.tenant_id, subject)
    return await _file(session, principal.tenant_id, "buyer", pseudonyms, None, principal.actor)


async def file_user_request(session: AsyncSession, settings: Settings, operator: Principal, tenant_id: str,
                            email: str) -> ErasureRequest:
    """A tenant user's erasure, filed by the platform operator (the user's own data controller for
    the account). The user is resolved now: the request keeps its id, not its e-mail."""
    await bind_tenant(session, tenant_id)
    targets = ErasureTargets(session)
    try:
        await targets.jurisdiction(tenant_id)
    except Exception:  # noqa: BLE001 - NoResultFound: no such tenant
        raise NotFound("no such tenant", code="tenant_not_found") from None
    user = await targets.user_by_email(normalize_email(email))
    if user is None:
        # The tenant exists (the path names it): the body names no user of it, a 422 on the field.
        raise ValidationFailed("no user with this email in the tenant", code="user_not_found", field="subject.email")
    pseudonyms = _pseudonyms(settings, tenant_id, {"email": email}, users=True)
    return await _file(session, tenant_id, "user", pseudonyms, user.id, operator.actor)


async def _file(session: AsyncSession, tenant_id: str, kind: str, pseudonyms: list[list[str]], user_id: str | None,
                actor: str) -> ErasureRequest:
    now = utcnow()
    request = ErasureRequest(tenant_id=tenant_id, id=new_id("er"), kind=kind, status="pending",
                             pseudonyms=json.dumps(pseudonyms), user_id=user_id, requested_by=actor[:80],
                             received_at=now, due_at=_one_month_after(now),  # Art. 12(3)
                             erased="[]", restricted="[]")
    await ErasureRepository(session).add(request)
    enqueue(session, tenant_id, TOPIC, {"request_id": request.id})
    await record(session, tenant_id, actor, "privacy.erasure_requested", request.id,
                 {"kind": kind, "subject": pseudonyms[0][1]})
    privacy_request(session, "erasure", "received")
    return request


async def get_request(session: AsyncSession, request_id: str) -> ErasureRequest:
    request = await ErasureRepository(session).get(request_id)
    if request is None:
        raise NotFound("no such erasure request", code="erasure_request_not_found")
    return request


async def list_requests(session: AsyncSession, *, limit: int, starting_after: str | None):
    return await ErasureRepository(session).page_requests(limit, starting_after)


async def open_requests(session: AsyncSession) -> list[dict[str, Any]]:
    """Every tenant's open requests, the most urgent first (platform-bound session: the operator console)."""
    return [{**render(r), "tenant_id": r.tenant_id} for r in await ErasureRepository(session).open_requests()]


def render(request: ErasureRequest) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": request.id, "kind": request.kind, "status": request.status,
        "received_at": request.received_at, "due_at": request.due_at, "completed_at": request.completed_at,
        "erased": json.loads(request.erased), "restricted": json.loads(request.restricted),
        "receipt": json.loads(request.receipt) if request.receipt else None,
    }
    return out


def _root(size_frontier: tuple[int, bytes | None]) -> str:
    _, frontier = size_frontier
    tree = merkle.CompactRange.from_bytes(frontier) if frontier else merkle.CompactRange()
    return tree.root().hex()


# --- processing -----------------------------------------------------------------------------------


async def purge_outside_database(settings: Settings, tenant_id: str, request: dict[str, Any]) -> list[str]:
    """Stores that no transaction covers, purged before the database step (idempotent, so a retry
    purges again). Returns the categories purged."""
    done = []
    if request["kind"] == "user":
        hashes = {h for kind, h in request["pseudonyms"] if kind == "email"}
        await _purge_throttle_keys(settings, tenant_id, hashes)
        done.append("login_throttle_keys")
    return done


async def _purge_throttle_keys(settings: Settings, tenant_id: str, hashes: set[str]) -> None:
    """Login throttles are keyed by the e-mail in clear (``stalela:fail:login:acct:<email>``): find
    the user's by pseudonym, since the request keeps no e-mail to name them."""
    if not settings.redis_url or not hashes:
        return  # in-process counters expire within the login window and die with the process
    import redis.asyncio as redis

    client = redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
    try:
        async for key in client.scan_iter(match="stalela:fail:login:acct:*", count=500):
            email = key.decode("utf-8", "replace").split("stalela:fail:login:acct:", 1)[1]
            if subjects.pseudonym(settings, tenant_id, "email", email) in hashes:
                await client.delete(key)
    finally:
        await client.aclose()


async def process(db: Database, settings: Settings, tenant_id: str, request_id: str) -> None:
    async with db.transaction(readonly=True) as session:
        await bind_tenant(session, tenant_id)
        request = await ErasureRepository(session).get(request_id)
        if request is None or request.status == "completed":
            return
        view = {"kind": request.kind, "pseudonyms": json.loads(request.pseudonyms)}
    outside = await purge_outside_database(settings, tenant_id, view)
    async with db.transaction() as session:
        await bind_tenant(session, tenant_id)
        request = await ErasureRepository(session).get_for_update(request_id)
        if request is None or request.status == "completed":
            return
        await _erase(session, settings, request, outside)


async def _erase(session: AsyncSession, settings: Settings, request: ErasureRequest, outside: list[str]) -> None:
    tenant_id, now = request.tenant_id, utcnow()
    targets = ErasureTargets(session)
    # The tenant's log lock, as sealing takes it: no seal can attach an invoice to a subject being erased,
    # nor index an identifier being tombstoned, until this commits. The root is read under it.
    await MerkleRepository(session).lock_log(tenant_id)
    root_before = _root(await targets.merkle_root(tenant_id))
    pseudonyms = json.loads(request.pseudonyms)
    erased: list[str] = list(outside)
    restricted: list[dict[str, Any]] = []
    destroyed: list[str] = []
    shredded_ids: list[str] = []
    restricted_ids: list[dict[str, str]] = []
    tombstoned: list[str] = []
    if request.kind == "buyer":
        jurisdiction = await targets.jurisdiction(tenant_id)
        # The person's whole record: subjects merged into the one their identifiers name (see fiscal.subjects).
        ids = await subjects.with_merged(session, await subjects.named_by(session, [h for _, h in pseudonyms]))
        held = bool(await active_holds(session))
        for subject in await targets.subjects(ids):
            until, citation = await fiscal_retain_until(session, jurisdiction, subject.last_seen_at)
            if held and until < now.date():
                # A legal hold (Art. 17(3)(e)) keeps even what left retention: restricted, shredded by the
                # retention run once the hold is released.
                until, citation = now.date(), "a legal hold (GDPR Art. 17(3)(e))"
            outcome, keys, hashes = await subjects.erase(session, tenant_id, subject.id, retain_until=until, now=now)
            tombstoned += hashes
            destroyed += keys
            if outcome == "restricted":
                restricted_ids.append({"subject_id": subject.id, "retain_until": until.isoformat()})
                restricted.append({"category": "buyer_on_sealed_invoices",
                                   "legal_basis": f"GDPR Art. 17(3)(b): {citation}",
                                   "retain_until": until.isoformat()})
            else:
                shredded_ids.append(subject.id)
        # The identifiers asked about stay refused too, even those no subject held (no key is made for them).
        await subjects.tombstone(session, tenant_id, [h for _, h in pseudonyms], now)
        if ids:
            erased += ["buyer_identifiers"]
            if shredded_ids:
                erased.append("buyer_on_sealed_invoices")
    else:
        user = await targets.user(request.user_id or "")
        if user is not None and user.password_hash != "!erased":
            email, name = _user_tombstone(pseudonyms[0][1])
            await targets.erase_user(user, email, name, now)
        erased += ["user_account", "sessions", "invitations"]
    # Every tenant export made before holds the subject in clear (invoices, users): revoked, their files
    # deleted by the purge each revocation enqueues. Exports cannot be matched to one subject afterwards.
    if await exports.revoke_live_exports(session, "system:privacy", "erasure"):
        erased.append("export_files")
    if await audit_exports.discard_ready(session, settings, "discarded after a data subject's erasure: ask again"):
        erased.append("audit_export_files")
    root_after = _root(await targets.merkle_root(tenant_id))
    payload = {"request_id": request.id, "tenant_id": tenant_id, "subject": pseudonyms[0][1],
               "erased": sorted(set(erased)), "restricted": restricted, "destroyed_key_ids": sorted(destroyed),
               "merkle_root_before": root_before, "merkle_root_after": root_after, "completed_at": rfc3339(now)}
    receipt = await sign_receipt(session, settings, tenant_id, payload)
    # The journal line goes first: once the transaction commits, a restore must be able to redo it.
    # A retry after a crash between this write and the commit finds its first entry: its receipt is the one
    # a restore would bring back, so it is the one stored (never two receipts for one request).
    entry = journal.append(settings, tenant_id, {
        "request_id": request.id, "tenant_id": tenant_id, "kind": request.kind,
        "subject_pseudonyms": sorted({h for _, h in pseudonyms} | set(tombstoned)),
        "destroyed_key_ids": sorted(destroyed), "shredded_subject_ids": sorted(shredded_ids),
        "restricted": restricted_ids, "user_id": request.user_id, "at": rfc3339(now), "receipt": receipt})
    receipt = entry.get("receipt") or receipt
    request.status, request.completed_at = "completed", now
    request.erased = json.dumps(receipt["payload"]["erased"])
    request.restricted = json.dumps(receipt["payload"]["restricted"])
    request.receipt = json.dumps(receipt)
    await session.flush()
    await record(session, tenant_id, "system:privacy", "privacy.erasure_completed", request.id,
                 {"subject": payload["subject"], "erased": payload["erased"],
                  "restricted": [r["category"] for r in restricted], "destroyed_key_ids": payload["destroyed_key_ids"]})
    privacy_request(session, "erasure", "completed")
    if destroyed:
        subjects.forget_keys(tenant_id, set(destroyed))


def _user_tombstone(email_pseudonym: str) -> tuple[str, str]:
    return f"erased-{email_pseudonym[:24]}@erased.invalid", f"erased {email_pseudonym[:12]}"


# --- the auditor's read of restricted data ---------------------------------------------------------


async def read_restricted_invoice(session: AsyncSession, settings: Settings, principal: Principal,
                                  invoice_id: str) -> dict[str, Any]:
    inv: Invoice = await invoices.get_invoice(session, principal, invoice_id)
    [shown] = await invoices.render_many(session, settings, [inv], purpose="audit")
    # Every read of restricted data is accounted for (Art. 18: processed only for the retained purpose).
    await record(session, principal.tenant_id, principal.actor, "privacy.restricted_read", inv.id,
                 {"subject": inv.buyer_subject, "purpose": "audit"})
    return shown


# --- restore after erasure -------------------------------------------------------------------------


async def replay_journal(db: Database, settings: Settings) -> int:
    """Re-apply every journal entry (idempotent). Raises ``journal.JournalBroken`` on a bad chain: a
    server must not serve a database whose erasures it cannot prove re-applied."""
    applied = 0
    for tenant_id in journal.tenants(settings):
        entries = journal.read(journal.path_for(settings, tenant_id))
        if not entries:
            continue
        async with db.transaction() as session:
            await bind_platform(session)
            if not await _tenant_exists(session, tenant_id):
                continue  # a database older than the tenant itself
            await bind_tenant(session, tenant_id)
            for entry in entries:
                await _reapply(session, settings, tenant_id, entry)
                applied += 1
    if applied:
        log.info("erasure_journal_replayed", entries=applied)
    return applied


async def _tenant_exists(session: AsyncSession, tenant_id: str) -> bool:
    try:
        await ErasureTargets(session).jurisdiction(tenant_id)
        return True
    except Exception:  # noqa: BLE001 - NoResultFound
        return False


async def _reapply(session: AsyncSession, settings: Settings, tenant_id: str, entry: dict[str, Any]) -> None:
    targets = ErasureTargets(session)
    at = datetime.fromisoformat(entry["at"].replace("Z", "+00:00"))
    if entry.get("kind") != "user":  # a user's e-mail pseudonym is no buyer's: never refused at sealing
        await subjects.tombstone(session, tenant_id, entry.get("subject_pseudonyms", []), at)
    for subject_id in entry.get("shredded_subject_ids", []):
        await subjects.shred(session, tenant_id, subject_id, at)
    for item in entry.get("restricted", []):
        await subjects.restrict(session, item["subject_id"], at, date.fromisoformat(item["retain_until"]))
    if entry.get("kind") == "user" and entry.get("user_id"):
        user = await targets.user(entry["user_id"])
        if user is not None and user.password_hash != "!erased":
            email, name = _user_tombstone(sorted(entry["subject_pseudonyms"])[0])
            await targets.erase_user(user, email, name, at)
    request = await ErasureRepository(session).get(entry["request_id"])
    if request is not None and request.status != "completed":
        receipt = entry.get("receipt") or {}
        request.status, request.completed_at = "completed", at
        request.erased = json.dumps(receipt.get("payload", {}).get("erased", []))
        request.restricted = json.dumps(receipt.get("payload", {}).get("restricted", []))
        request.receipt = json.dumps(receipt) if receipt else None
    await session.flush()


async def oldest_open_seconds(session: AsyncSession) -> float:
    oldest = await ErasureRepository(session).oldest_open()
    return max(0.0, (utcnow() - oldest).total_seconds()) if oldest else 0.0


