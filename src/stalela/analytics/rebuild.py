"""Recompute a tenant's analytics sums from the facts they add up: the sealed invoices (in the business days
their Z reports and merges gave them, as the day figures' rebuild replays them) and the sync rows' outcomes.

For the history sealed before the sums existed (migration 0034), and as a check: ``stalela analytics rebuild``
compares, and with ``apply`` replaces the tenant's rows. It holds the tenant's log lock, so no seal adds to
the sums meanwhile; an outcome the agent records during the rebuild waits for it (the rows' locks).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from stalela.analytics.repository import AnalyticsRepository
from stalela.authority.models import AuthorityTally
from stalela.authority.outcomes import Outcomes
from stalela.db.base import utcnow
from stalela.fiscal.invoices.models import BuyerTally, SalesTally
from stalela.fiscal.invoices.tallies import Tallies
from stalela.fiscal.jurisdictions import get_jurisdiction
from stalela.fiscal.ledger.repository import MerkleRepository
from stalela.fiscal.reports.service import sealed_days
from stalela.tenancy.repository import TenantRepository

PAGE = 2000
_NOT_SUMS = ("updated_at", "ref")


@dataclass
class RebuildResult:
    tenant_id: str
    invoices: int = 0
    outcomes: int = 0
    drift: dict[str, int] = field(default_factory=dict)  # table -> rows that differed (missing, extra, wrong)

    def as_json(self) -> dict[str, Any]:
        return {"tenant_id": self.tenant_id, "invoices": self.invoices, "outcomes": self.outcomes,
                "drift": self.drift}


def _keyed(rows: list[dict[str, Any]], key: tuple[str, ...]) -> dict[tuple, tuple]:
    """Rows by key, their sums only (rows that add up to nothing are no rows)."""
    out = {}
    for row in rows:
        sums = tuple(v for k, v in sorted(row.items()) if k not in key and k not in _NOT_SUMS)
        if any(sums):
            out[tuple(row[k] for k in key)] = sums
    return out


def _differing(expected: list[dict[str, Any]], stored: list[dict[str, Any]], key: tuple[str, ...]) -> int:
    a, b = _keyed(expected, key), _keyed(stored, key)
    return sum(1 for k in a.keys() | b.keys() if a.get(k) != b.get(k))


async def rebuild(session: AsyncSession, tenant_id: str, *, apply: bool) -> RebuildResult:
    await MerkleRepository(session).lock_log(tenant_id)
    rules = get_jurisdiction((await TenantRepository(session).get(tenant_id)).jurisdiction)
    repo, now, result = AnalyticsRepository(session), utcnow(), RebuildResult(tenant_id)
    tallies = Tallies()
    for outlet in await repo.outlets():
        async for inv, payload, _document, day, _position in sealed_days(session, outlet, rules):
            tallies.add(tenant_id=tenant_id, outlet_id=outlet.id, day=day, currency=payload["currency"],
                        type=payload["type"], credit=payload["type"] in rules.credit_note_types,
                        totals=payload["totals"], buyer_subject=inv.buyer_subject, invoice_id=inv.id, at=now)
            result.invoices += 1
    outcomes, after = Outcomes(session), ""
    while page := await repo.settled(after, PAGE):
        for invoice_id, outlet_id, status, sealed_at, updated_at in page:
            await outcomes.add(tenant_id, outlet_id, sealed_at, status, updated_at)
            result.outcomes += 1
        after = page[-1][0]
    for model, rows, key in ((SalesTally, tallies.rows(), ("kind", "period", "outlet_id", "currency", "key")),
                             (BuyerTally, tallies.buyer_rows(), ("currency", "grain", "period", "subject_id")),
                             (AuthorityTally, outcomes.rows(), ("day", "outlet_id", "outcome"))):
        result.drift[model.__tablename__] = _differing(rows, await repo.rows(model), ("tenant_id", *key))
        if apply and result.drift[model.__tablename__]:
            await repo.replace(model, tenant_id, rows)
    await session.flush()
    return result
