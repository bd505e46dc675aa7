"""The retention run's last rule: buyers whose invoices all left retention lose their key (crypto-shredding).

A sealed invoice is never deleted (docs/seal-format.md): at the end of its retention its buyer is erased
by destroying the subject's data key, which leaves the ciphertext on the row unreadable and every seal,
chain and Merkle proof intact. A subject is due when:
- it is restricted (an erasure was asked) and its ``retain_until`` has passed; or
- it is active and its last invoice is older than the oldest invoice still inside retention (the
  jurisdiction's floor or the tenant's longer ``fiscal`` policy, from the end of the financial year).
Any active legal hold of the tenant suspends shredding altogether: a subject is not tied to one outlet or
date, so no narrower rule would be safe.
"""
from __future__ import annotations

from datetime import date, datetime, time, timezone

from sqlalchemy.ext.asyncio import AsyncSession

from stalela.fiscal.subjects.repository import SubjectRepository
from stalela.fiscal.subjects.service import shred
from stalela.privacy.retention_rules import HoldScope, Period, retain_until
from stalela.privacy.retention_data import floor_for


def last_seen_before(jurisdiction: str | None, policy: Period | None, today: date) -> datetime:
    """The first moment whose invoices are still inside retention: a subject last seen before it is due."""
    month = floor_for(jurisdiction).year_end_month
    for year in range(today.year, today.year - 400, -1):
        # The last day of the financial year ending in ``year``: its invoices' retain_until.
        end_of_year = date(year, month, 1)
        kept_until = retain_until(jurisdiction, end_of_year, policy)
        assert kept_until is not None
        if kept_until < today:
            return datetime.combine(_next_year_start(year, month), time.min, tzinfo=timezone.utc)
    return datetime.min.replace(tzinfo=timezone.utc)


def _next_year_start(year: int, month: int) -> date:
    """The day after the financial year that ends in ``month`` of ``year``."""
    return date(year + (month // 12), month % 12 + 1, 1)


async def preview(session: AsyncSession, jurisdiction: str | None, policy: Period | None,
                  holds: tuple[HoldScope, ...], today: date, sample: int) -> dict:
    if holds:
        return {"count": 0, "sample": [], "held": True, "last_seen_before": None}
    before = last_seen_before(jurisdiction, policy, today)
    repo = SubjectRepository(session)
    return {"count": await repo.count_due(today, before), "sample": await repo.due(today, before, sample),
            "held": False, "last_seen_before": before}


async def shred_batch(session: AsyncSession, tenant_id: str, jurisdiction: str | None, policy: Period | None,
                      holds: tuple[HoldScope, ...], at: datetime, limit: int) -> tuple[list[str], list[str]]:
    """(subjects shredded, destroyed key ids) of one batch; nothing while a hold stands."""
    if holds:
        return [], []
    ids = await SubjectRepository(session).due(at.date(), last_seen_before(jurisdiction, policy, at.date()), limit)
    destroyed = []
    for subject_id in ids:
        destroyed += await shred(session, tenant_id, subject_id, at)
    return ids, destroyed
