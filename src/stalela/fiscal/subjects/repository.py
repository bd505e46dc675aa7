"""All SQL of the subject keys (the tenancy helper adds the tenant filter to every statement)."""
from __future__ import annotations

from datetime import date, datetime

from typing import Any

from sqlalchemy import delete, func, insert, select, update

from stalela.db.repository import Repository
from stalela.fiscal.subjects.models import ErasedId, Subject, SubjectId, TenantKey


class SubjectRepository(Repository[Subject]):
    model = Subject

    async def many(self, ids: set[str], tenant_id: str | None = None) -> dict[str, Subject]:
        """``tenant_id``: also for sessions not bound to a tenant (the public verification page)."""
        if not ids:
            return {}
        stmt = select(Subject).where(Subject.id.in_(sorted(ids)))
        rows = await self.session.execute(stmt.where(Subject.tenant_id == tenant_id) if tenant_id else stmt)
        return {s.id: s for s in rows.scalars()}

    async def by_hashes(self, hashes: list[str]) -> dict[str, str]:
        """id_hash → subject id, for those of ``hashes`` that name a known subject."""
        if not hashes:
            return {}
        rows = await self.session.execute(
            select(SubjectId.id_hash, SubjectId.subject_id).where(SubjectId.id_hash.in_(sorted(set(hashes)))))
        return dict(rows.all())

    async def live_by_hashes(self, hashes: list[str]) -> dict[str, Subject]:
        """id_hash → its subject, in one round trip (the sealing path: one query per buyer)."""
        if not hashes:
            return {}
        rows = await self.session.execute(
            select(SubjectId.id_hash, Subject).join(Subject, (Subject.tenant_id == SubjectId.tenant_id)
                                                    & (Subject.id == SubjectId.subject_id))
            .where(SubjectId.id_hash.in_(sorted(set(hashes)))))
        return {h: subject for h, subject in rows.all()}

    async def insert_new(self, subjects: list[dict], ids: list[dict]) -> None:
        """A sealing group's new subjects and identifiers, in two multi-row INSERTs (Core, like the invoices)."""
        if subjects:
            await self.session.execute(insert(Subject.__table__), subjects)
        if ids:
            await self.session.execute(insert(SubjectId.__table__), ids)

    async def erased(self, hashes: list[str]) -> set[str]:
        """The standing tombstones among ``hashes`` (a released one no longer refuses)."""
        if not hashes:
            return set()
        rows = await self.session.execute(select(ErasedId.id_hash).where(ErasedId.id_hash.in_(sorted(set(hashes))),
                                                                         ErasedId.released_at.is_(None)))
        return set(rows.scalars())

    async def point(self, hashes: list[str], subject_id: str) -> None:
        await self.session.execute(update(SubjectId).where(SubjectId.id_hash.in_(sorted(set(hashes))))
                                   .values(subject_id=subject_id))

    async def merge(self, others: set[str], into: str) -> None:
        """``others`` are the same person as ``into``: their identifiers point at it, and they remember it."""
        if not others:
            return
        await self.session.execute(update(SubjectId).where(SubjectId.subject_id.in_(sorted(others)))
                                   .values(subject_id=into))
        await self.session.execute(update(Subject).where(Subject.id.in_(sorted(others))).values(merged_into=into))

    async def closure(self, subject_ids: set[str]) -> set[str]:
        found, frontier = set(subject_ids), set(subject_ids)
        while frontier:
            rows = await self.session.execute(select(Subject.id).where(Subject.merged_into.in_(sorted(frontier))))
            frontier = set(rows.scalars()) - found
            found |= frontier
        return found

    async def subject_hashes(self, subject_id: str) -> list[str]:
        rows = await self.session.execute(select(SubjectId.id_hash).where(SubjectId.subject_id == subject_id))
        return list(rows.scalars())

    async def seen(self, subject_ids: set[str], at: datetime) -> None:
        if subject_ids:
            await self.session.execute(update(Subject).where(Subject.id.in_(sorted(subject_ids)))
                                       .values(last_seen_at=at))

    async def tombstone(self, tenant_id: str, subject_id: str, at: datetime) -> list[str]:
        """Replace the subject's identifiers by tombstones; returns the pseudonyms (for the receipt)."""
        hashes = await self.subject_hashes(subject_id)
        await self.tombstone_hashes(tenant_id, hashes, at)
        await self.session.execute(delete(SubjectId).where(SubjectId.subject_id == subject_id))
        return hashes

    async def tombstone_hashes(self, tenant_id: str, hashes: list[str], at: datetime) -> None:
        """Tombstones for ``hashes`` as of an erasure at ``at``, and the identifiers unindexed. One released
        before ``at`` stands again (a new erasure of the same identifier); one released after it (a new
        customer's, ``new_subject``) is left alone: the journal's replay re-applies old erasures with their
        own ``at``."""
        if not hashes:
            return
        wanted = sorted(set(hashes))
        present = dict((await self.session.execute(
            select(ErasedId.id_hash, ErasedId.released_at).where(ErasedId.id_hash.in_(wanted)))).all())
        enforce = [h for h in wanted if present.get(h) is None or present[h] <= at]
        again = [h for h in enforce if h in present]
        if again:
            await self.session.execute(update(ErasedId).where(ErasedId.id_hash.in_(again)).values(released_at=None))
        missing = [h for h in enforce if h not in present]
        if missing:  # Core, at once: later statements of the transaction must see them
            await self.session.execute(insert(ErasedId.__table__),
                                       [{"tenant_id": tenant_id, "id_hash": h, "erased_at": at} for h in missing])
        if enforce:
            await self.session.execute(delete(SubjectId).where(SubjectId.id_hash.in_(enforce)))

    async def forget_tombstones(self, hashes: list[str], at: datetime) -> None:
        """A request that says the buyer is a new subject: the old tombstones stop refusing the ids. Kept as
        released (not deleted), so replaying the erasure journal after a restore does not refuse them again."""
        if hashes:
            await self.session.execute(update(ErasedId).where(ErasedId.id_hash.in_(sorted(set(hashes))))
                                       .values(released_at=at))

    async def restrict(self, subject_id: str, at: datetime, retain_until: date) -> None:
        await self.session.execute(update(Subject).where(Subject.id == subject_id, Subject.status == "active")
                                   .values(status="restricted", restricted_at=at, retain_until=retain_until))

    async def shred(self, subject_id: str, at: datetime) -> bool:
        """Destroy the key; the identifiers stop naming the subject (a returning buyer starts a new one)."""
        result = await self.session.execute(
            update(Subject).where(Subject.id == subject_id, Subject.status != "shredded")
            .values(status="shredded", wrapped_key=None, shredded_at=at))
        await self.session.execute(delete(SubjectId).where(SubjectId.subject_id == subject_id))
        return bool(result.rowcount)

    @staticmethod
    def _due(today: date, last_seen_before: datetime | None) -> Any:
        """Subjects whose retention ended: restricted ones past their retain_until, and active ones whose last
        invoice is older than every invoice still inside retention (None: no active one is due)."""
        restricted = (Subject.status == "restricted") & (Subject.retain_until < today)
        if last_seen_before is None:
            return restricted
        return restricted | ((Subject.status == "active") & (Subject.last_seen_at < last_seen_before))

    async def due(self, today: date, last_seen_before: datetime | None, limit: int) -> list[str]:
        rows = await self.session.execute(select(Subject.id).where(self._due(today, last_seen_before))
                                          .order_by(Subject.id).limit(limit))
        return list(rows.scalars())

    async def count_due(self, today: date, last_seen_before: datetime | None) -> int:
        return (await self.session.execute(select(func.count()).select_from(Subject)
                                           .where(self._due(today, last_seen_before)))).scalar_one()


class TenantKeyRepository(Repository[TenantKey]):
    model = TenantKey

    async def active(self) -> TenantKey | None:
        rows = await self.session.execute(select(TenantKey).where(TenantKey.status == "active")
                                          .order_by(TenantKey.created_at.desc()).limit(1))
        return rows.scalar_one_or_none()

    async def many(self, ids: set[str], tenant_id: str | None = None) -> dict[str, TenantKey]:
        if not ids:
            return {}
        stmt = select(TenantKey).where(TenantKey.id.in_(sorted(ids)))
        rows = await self.session.execute(stmt.where(TenantKey.tenant_id == tenant_id) if tenant_id else stmt)
        return {k.id: k for k in rows.scalars()}
