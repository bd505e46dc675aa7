"""Subjects: sealing a buyer under its subject's key, revealing it to whom may read it, restricting
and shredding. The caller's transaction; flushes, never commits.

Sealing (``BuyerVault``, one per sealing group, under the tenant's log lock so subject creation is
serialised per tenant): the buyer is looked up by the pseudonyms of its identifiers; an identifier
whose subject was erased is refused (409 ``subject_erased``) unless the request says the buyer is a
new subject; otherwise the subject (and its data key, wrapped by the tenant key) is created.

Reading (``reveal``): the subject's row decides, never a cache: ``active`` → shown; ``restricted`` →
shown only for the purposes that blocked erasure (the authority, audits, auditors); ``shredded`` →
gone for everyone. Decrypted buyers are re-checked against the signed commitment.
"""
from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from cryptography.exceptions import InvalidTag
from sqlalchemy.ext.asyncio import AsyncSession

from stalela.config import Settings
from stalela.db.base import utcnow
from stalela.errors import Conflict
from stalela.fiscal.core.disclosure import buyer_commitment, check_commitment, has_personal_data, new_salt
from stalela.fiscal.subjects import crypto, wrapping
from stalela.fiscal.subjects.models import Subject, TenantKey
from stalela.fiscal.subjects.repository import SubjectRepository, TenantKeyRepository
from stalela.kit.ids import new_id
from stalela.kit import pseudonyms

# Who reads, and so whether a restricted subject is shown (GDPR Art. 18(2): restricted data is
# processed only for the purpose that kept it, here the tax obligation).
Purpose = Literal["tenant", "public", "authority", "audit"]
_RESTRICTED_OK = frozenset({"authority", "audit"})


class SubjectErased(Conflict):
    code = "subject_erased"
    title = "This buyer's data was erased"


@dataclass(frozen=True, slots=True)
class SealedBuyer:
    """What the sealing pipeline keeps of a buyer: the signed commitment, and where the buyer went."""
    commitment: str
    salt: str
    buyer: dict[str, Any]
    subject_id: str | None = None  # None: nothing personal, the buyer stays in clear on the document
    ciphertext: bytes | None = None


# Unwrapped data keys, by (tenant, key id, wrapped bytes). Never trusted for status: ``reveal`` and
# ``BuyerVault`` read the subject row first, so a key shredded by another process is never used.
_keys: OrderedDict[tuple[str, str, bytes], bytes] = OrderedDict()
_keys_lock = threading.Lock()
_KEY_CACHE = 4096


def _cached(tenant_id: str, key_id: str, wrapped: bytes) -> bytes | None:
    with _keys_lock:
        return _keys.get((tenant_id, key_id, bytes(wrapped)))


def _remember(tenant_id: str, key_id: str, wrapped: bytes, data_key: bytes) -> None:
    with _keys_lock:
        _keys[(tenant_id, key_id, bytes(wrapped))] = data_key
        _keys.move_to_end((tenant_id, key_id, bytes(wrapped)))
        while len(_keys) > _KEY_CACHE:
            _keys.popitem(last=False)


def forget_keys(tenant_id: str, key_ids: set[str] | None = None) -> None:
    """Drop cached data keys (after shredding; ``None``: all of the tenant's)."""
    with _keys_lock:
        for entry in [k for k in _keys if k[0] == tenant_id and (key_ids is None or k[1] in key_ids)]:
            del _keys[entry]


def pseudonym(settings: Settings, tenant_id: str, kind: str, value: str) -> str:
    return pseudonyms.pseudonym(settings, tenant_id, kind, value)


async def tenant_key(session: AsyncSession, settings: Settings, tenant_id: str) -> TenantKey:
    """The tenant's active wrapping key, created on first use."""
    repo = TenantKeyRepository(session)
    key = await repo.active()
    if key is None:
        key_id = new_id("tk")
        backend, material = wrapping.new_tenant_key(settings, tenant_id, key_id)
        key = await repo.add(TenantKey(tenant_id=tenant_id, id=key_id, backend=backend, material=material,
                                       status="active", created_at=utcnow()))
    return key


def _data_key(settings: Settings, tenant_id: str, subject: Subject, tkey: TenantKey) -> bytes:
    assert subject.wrapped_key is not None
    found = _cached(tenant_id, subject.key_id, subject.wrapped_key)
    if found is None:
        found = wrapping.unwrap(settings, tenant_id, tkey.backend, tkey.id, tkey.material, subject.key_id,
                                subject.wrapped_key)
        _remember(tenant_id, subject.key_id, subject.wrapped_key, found)
    return found


@dataclass
class BuyerVault:
    session: AsyncSession
    settings: Settings
    tenant_id: str
    _by_hash: dict[str, Subject] = field(default_factory=dict)
    _new: dict[str, Subject] = field(default_factory=dict)
    _new_ids: dict[str, str] = field(default_factory=dict)  # id_hash → subject id, to insert
    _seen: set[str] = field(default_factory=set)
    # What the database said about identifiers (``prefetch``, or a lookup while sealing): indexed to a
    # subject, not indexed, standing tombstones.
    _indexed: dict[str, Subject] = field(default_factory=dict)
    _absent: set[str] = field(default_factory=set)
    _erased: set[str] = field(default_factory=set)
    _tkey: TenantKey | None = None

    async def seal(self, buyer: dict[str, Any] | None, *, new_subject: bool = False,
                   salt: str | None = None) -> SealedBuyer | None:
        """Raises ``SubjectErased`` (nothing written) when an identifier's subject was erased.

        ``salt``: the one a device already committed with (an offline invoice, checked by the merge);
        else a fresh one."""
        if buyer is None:
            return None
        salt = salt or new_salt()
        commitment = buyer_commitment(salt, buyer)
        if not has_personal_data(buyer):
            return SealedBuyer(commitment, salt, buyer)
        subject = await self._subject(buyer, new_subject)
        data_key = _data_key(self.settings, self.tenant_id, subject, await self._tenant_key())
        ciphertext = crypto.encrypt_buyer(data_key, self.tenant_id, subject.id, salt, buyer)
        self._seen.add(subject.id)
        return SealedBuyer(commitment, salt, buyer, subject.id, ciphertext)

    async def prefetch(self, buyers: list[dict[str, Any]]) -> None:
        """Look up every identifier of a group's buyers at once: two queries for the group instead of one per
        invoice, inside the tenant's lock where every round trip holds up the tenant's other seals."""
        hashes = sorted({pseudonym(self.settings, self.tenant_id, kind, value)
                         for buyer in buyers for kind, value in crypto.identifiers(buyer)})
        await self._lookup(hashes)

    async def _lookup(self, hashes: list[str]) -> None:
        if not hashes:
            return
        repo = SubjectRepository(self.session)
        found = await repo.live_by_hashes(hashes)
        self._indexed.update(found)
        missing = [h for h in hashes if h not in found]
        self._absent.update(missing)
        self._erased.update(await repo.erased(missing) if missing else set())

    async def flush(self, at: datetime) -> None:
        """Write the group's new subjects, and that the known ones were seen now (their retention runs
        from their last invoice)."""
        repo = SubjectRepository(self.session)
        await repo.insert_new(
            [{c.name: getattr(s, c.name) for c in Subject.__table__.columns} for s in self._new.values()],
            [{"tenant_id": self.tenant_id, "id_hash": h, "subject_id": sid} for h, sid in self._new_ids.items()])
        # Retention counts from the end of the financial year of the last invoice, so only the date matters:
        # a subject already seen today is not written again (a returning buyer's seal writes no subject row).
        known = {sub.id: sub for sub in self._by_hash.values()}
        stale = {sid for sid in self._seen - set(self._new)
                 if sid not in known or known[sid].last_seen_at is None or known[sid].last_seen_at.date() < at.date()}
        await repo.seen(stale, at)
        self._new, self._new_ids = {}, {}

    async def _tenant_key(self) -> TenantKey:
        if self._tkey is None:
            self._tkey = await tenant_key(self.session, self.settings, self.tenant_id)
        return self._tkey

    async def _subject(self, buyer: dict[str, Any], new_subject: bool) -> Subject:
        """The buyer's subject: the live one its first identifier names (tax id, e-mail, reference), or a new
        one. One person is one subject: when the identifiers name several (sealed once by e-mail, once by tax
        id), they are merged into the first (``merged_into``; erasure and export follow the merge) and every
        identifier points at it from now on."""
        repo = SubjectRepository(self.session)
        hashes = [pseudonym(self.settings, self.tenant_id, kind, value) for kind, value in crypto.identifiers(buyer)]
        await self._lookup([h for h in hashes if h not in self._by_hash and h not in self._indexed
                            and h not in self._absent])
        uncached = [h for h in hashes if h not in self._by_hash]
        indexed = {h: self._indexed[h] for h in uncached if h in self._indexed}
        active = {h: sub for h, sub in indexed.items() if sub.status == "active"}
        # An identifier is either indexed or a tombstone, never both.
        erased = {h for h in uncached if h not in active and h in self._erased}
        if erased and not new_subject:
            raise SubjectErased("this buyer's personal data was erased at their request; seal with "
                                '"buyer": {..., "new_subject": true} if they are a new customer', field="buyer")
        if erased:
            await repo.forget_tombstones(sorted(erased), utcnow())
            self._erased -= erased
        named = [self._by_hash.get(h) or active.get(h) for h in hashes]
        subject = next((sub for sub in named if sub is not None), None) or await self._create()
        merged = {sub.id for sub in named if sub is not None and sub.id != subject.id}
        if merged:
            await self._merge(merged, subject)
        moved = []
        for h in hashes:
            if h in self._by_hash and self._by_hash[h].id == subject.id:
                continue
            if h in indexed:
                if indexed[h].id != subject.id and h not in self._new_ids:
                    moved.append(h)  # its row names another subject (shredded, or just merged): re-pointed
            else:
                self._new_ids[h] = subject.id
            self._by_hash[h] = subject
        if moved:
            await repo.point(moved, subject.id)
        return subject

    async def _merge(self, others: set[str], into: Subject) -> None:
        for sid in others:
            if sid in self._new:  # created in this group, not written yet
                self._new[sid].merged_into = into.id
                self._new_ids.update({h: into.id for h, owner in self._new_ids.items() if owner == sid})
        await SubjectRepository(self.session).merge(others - set(self._new), into.id)
        self._by_hash.update({h: into for h, sub in self._by_hash.items() if sub.id in others})

    async def _create(self) -> Subject:
        tkey = await self._tenant_key()
        key_id, now = new_id("sk"), utcnow()
        subject = Subject(tenant_id=self.tenant_id, id=new_id("sub"), status="active", key_id=key_id,
                          tenant_key_id=tkey.id, last_seen_at=now, created_at=now, retain_until=None,
                          restricted_at=None, shredded_at=None, merged_into=None,
                          wrapped_key=wrapping.wrap(self.settings, self.tenant_id, tkey.backend, tkey.id, tkey.material,
                                                    key_id, crypto.new_data_key()))
        self._new[subject.id] = subject
        return subject


@dataclass(frozen=True, slots=True)
class Sealed:
    """A stored buyer to reveal: the invoice's subject, ciphertext and signed commitment."""
    invoice_id: str
    subject_id: str
    ciphertext: bytes
    commitment: str


async def reveal(session: AsyncSession, settings: Settings, tenant_id: str, items: list[Sealed], *,
                 purpose: Purpose) -> dict[str, dict[str, Any]]:
    """invoice id → ``{"buyer", "salt"}`` when readable for ``purpose``, else ``{"status": "restricted"|"erased"}``."""
    subjects = await SubjectRepository(session).many({i.subject_id for i in items}, tenant_id)
    tkeys = await TenantKeyRepository(session).many({s.tenant_key_id for s in subjects.values()}, tenant_id)
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        subject = subjects.get(item.subject_id)
        tkey = tkeys.get(subject.tenant_key_id) if subject else None
        if subject is None or subject.wrapped_key is None or tkey is None or tkey.status != "active":
            out[item.invoice_id] = {"status": "erased"}
            continue
        if subject.status == "restricted" and purpose not in _RESTRICTED_OK:
            out[item.invoice_id] = {"status": "restricted"}
            continue
        data_key = _data_key(settings, tenant_id, subject, tkey)
        try:
            disclosed = json.loads(crypto.decrypt_buyer(data_key, tenant_id, subject.id, item.ciphertext))
        except (InvalidTag, ValueError):  # damaged, or moved from another subject's row (the AAD binds it)
            out[item.invoice_id] = {"status": "unverifiable"}
            continue
        if not check_commitment(item.commitment, disclosed.get("salt"), disclosed.get("buyer")):
            # A ciphertext moved onto another invoice's row: refuse to show another invoice's buyer.
            out[item.invoice_id] = {"status": "unverifiable"}
            continue
        out[item.invoice_id] = {"buyer": disclosed["buyer"], "salt": disclosed["salt"], "status": subject.status}
    return out


async def find_subject(session: AsyncSession, settings: Settings, tenant_id: str, *, email: str | None = None,
                       tax_id: str | None = None, reference: str | None = None) -> str | None:
    """The subject one of these identifiers names, if any (None also when it was erased)."""
    hashes = [pseudonym(settings, tenant_id, kind, value)
              for kind, value in (("tax_id", tax_id), ("email", email), ("reference", reference)) if value]
    known = await SubjectRepository(session).by_hashes(hashes)
    for h in hashes:
        if h in known:
            return known[h]
    return None


async def with_merged(session: AsyncSession, subject_ids: set[str]) -> set[str]:
    """``subject_ids`` and every subject merged into them, transitively: one person's whole record."""
    return await SubjectRepository(session).closure(subject_ids)


async def named_by(session: AsyncSession, hashes: list[str]) -> set[str]:
    """The subjects these identifier pseudonyms name."""
    return set((await SubjectRepository(session).by_hashes(hashes)).values())


async def tombstone(session: AsyncSession, tenant_id: str, hashes: list[str], at: datetime) -> None:
    """Refuse these identifiers from now on (see ``SubjectRepository.tombstone_hashes``)."""
    await SubjectRepository(session).tombstone_hashes(tenant_id, hashes, at)


async def restrict(session: AsyncSession, subject_id: str, at: datetime, retain_until: date) -> None:
    await SubjectRepository(session).restrict(subject_id, at, retain_until)


async def erase(session: AsyncSession, tenant_id: str, subject_id: str, *, retain_until: date | None,
                now: datetime | None = None) -> tuple[str, list[str], list[str]]:
    """Erase a subject: its identifiers become tombstones; its key is restricted until ``retain_until``
    (fiscal data inside retention) or shredded now (``None``: nothing is retained).

    Returns (outcome ``"restricted"``/``"shredded"``, destroyed key ids, pseudonyms). Idempotent."""
    now = now or utcnow()
    repo = SubjectRepository(session)
    subject = await repo.get(subject_id)
    if subject is None:
        return "shredded", [], []
    hashes = await repo.tombstone(tenant_id, subject_id, now)
    if retain_until is not None and retain_until >= now.date() and subject.status != "shredded":
        await repo.restrict(subject_id, now, retain_until)
        return "restricted", [], hashes
    destroyed = [subject.key_id] if await repo.shred(subject_id, now) else []
    forget_keys(tenant_id, {subject.key_id})
    return "shredded", destroyed, hashes


async def shred(session: AsyncSession, tenant_id: str, subject_id: str, now: datetime | None = None) -> list[str]:
    """Destroy a subject's data key (retention ended); returns the destroyed key ids. Idempotent."""
    repo = SubjectRepository(session)
    subject = await repo.get(subject_id)
    if subject is None or not await repo.shred(subject_id, now or utcnow()):
        return []
    forget_keys(tenant_id, {subject.key_id})
    return [subject.key_id]
