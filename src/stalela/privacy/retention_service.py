"""Retention use cases: tenant policies per category, legal holds, the preview and the run, and the
answer to deleting a sealed invoice.

The run is the soft delete with a grace period: a row past its rule is first marked (``purge_after =
now + grace``) and deleted only by a later run once the grace has passed, if it is still past its rule
and not held then. The preview is the same ``step`` with ``dry_run``: it counts what the run would act
on, by the statements the run executes (``retention_repository.sets``). Everything here asks ``now()``
instead of the system clock, so tests walk through grace periods and years with ``use_clock``.

Services flush, never commit; ``run_tenant`` and ``run_all`` open their own short transactions (one
per batch), like the other background jobs, and take the tenant's retention lock in each.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from stalela.audit.service import record
from stalela.auth.principal import Principal
from stalela.config import Settings
from stalela.db.session import Database
from stalela.errors import Conflict, NotFound, ValidationFailed
from stalela.fiscal.invoices import service as invoices
from stalela.fiscal.ledger.repository import MerkleRepository
from stalela.kit.clock import SwappableClock
from stalela.kit.ids import new_id
from stalela.observability.logging import get_logger
from stalela.observability.metrics import retention_purged
from stalela.privacy import retention_shredding
from stalela.privacy.retention_data import CATEGORIES, floor_for
from stalela.privacy.retention_models import LegalHold, RetentionPolicy
from stalela.privacy.retention_repository import (
    PURGERS,
    HoldRepository,
    PolicyRepository,
    Purger,
    RetentionRepository,
    Window,
    sets,
    split,
)
from stalela.privacy.retention_rules import HoldScope, Period, cutoff, retain_until
from stalela.tenancy.context import bind_platform, bind_tenant
from stalela.tenancy.repository import OutletRepository, TenantRepository

log = get_logger("stalela.privacy")
SYSTEM_ACTOR = "system:retention"
SAMPLE = 5
STEPS = ("unmark", "purge", "mark")  # disjoint sets: acting on one leaves the others as they were
# The retention run's "now": tests replace it to walk past grace periods and retention ends.
_clock = SwappableClock()
now = _clock.now
use_clock = _clock.use


# --- policies ------------------------------------------------------------------------------------


def _period(policy: RetentionPolicy | None, default_days: int = 0) -> Period:
    if policy is not None and (policy.years is not None or policy.days is not None):
        return Period(policy.years or 0, policy.days or 0)
    return Period(0, default_days)


def _grace(settings: Settings, policy: RetentionPolicy | None) -> int:
    return policy.grace_days if policy is not None and policy.grace_days else settings.retention_grace_days


async def _jurisdiction(session: AsyncSession, principal: Principal) -> str:
    if principal.jurisdiction:
        return principal.jurisdiction
    return (await TenantRepository(session).get(principal.tenant_id)).jurisdiction


def _floor_view(jurisdiction: str) -> dict[str, Any]:
    floor = floor_for(jurisdiction)
    return {"jurisdiction": jurisdiction, "years": floor.years, "citation": floor.citation, "covers": floor.covers,
            "counted_from": floor.counted_from}


def _policy_view(settings: Settings, jurisdiction: str, category: str, policy: RetentionPolicy | None) -> dict:
    rules = []
    for purger in PURGERS.values():
        if purger.category == category:
            period = _period(policy, purger.default_days)
            rules.append({"purger": purger.name, "table": purger.table, "rule": purger.tag.rule,
                          "anchor": purger.tag.rule.rsplit("@", 1)[-1],
                          "years": period.years, "days": period.days})
    view = {"category": category, "source": "tenant" if policy else "default",
            "years": policy.years if policy else None, "days": policy.days if policy else None,
            "grace_days": _grace(settings, policy), "floor": None, "rules": rules,
            "updated_at": policy.updated_at if policy else None, "updated_by": policy.updated_by if policy else None}
    if category == "fiscal":
        floor = floor_for(jurisdiction)
        view |= {"floor": _floor_view(jurisdiction), "source": "tenant" if policy else "statutory",
                 "years": max(floor.years, (policy.years or 0) if policy else 0),
                 "days": (policy.days or 0) if policy else 0}
    return view


async def get_policies(session: AsyncSession, settings: Settings, principal: Principal) -> dict[str, Any]:
    jurisdiction = await _jurisdiction(session, principal)
    saved = await PolicyRepository(session).all()
    return {"jurisdiction": jurisdiction,
            "data": [_policy_view(settings, jurisdiction, c, saved.get(c)) for c in CATEGORIES]}


async def put_policy(session: AsyncSession, settings: Settings, principal: Principal, category: str,
                     years: int | None, days: int | None, grace_days: int | None) -> dict[str, Any]:
    """Replace the category's policy. Fiscal data may be kept longer than the law says, never shorter."""
    jurisdiction = await _jurisdiction(session, principal)
    floor = floor_for(jurisdiction)
    if category == "fiscal" and years is not None and years < floor.years:
        raise ValidationFailed(
            f"{jurisdiction} keeps fiscal documents {floor.years} years ({floor.citation}): a policy may lengthen "
            "that, never shorten it", code="retention_below_statutory_minimum", field="years",
            extra={"floor": _floor_view(jurisdiction)})
    repo = PolicyRepository(session)
    policy = await repo.get(category) or RetentionPolicy(tenant_id=principal.tenant_id, category=category)
    policy.years, policy.days, policy.grace_days = years, days, grace_days
    policy.updated_at, policy.updated_by = now(), principal.actor
    await repo.save(policy)
    await record(session, principal.tenant_id, principal.actor, "privacy.retention_policy_set", category,
                 {"years": years, "days": days, "grace_days": grace_days})
    return _policy_view(settings, jurisdiction, category, policy)


# --- legal holds ---------------------------------------------------------------------------------


def hold_scope(hold: LegalHold) -> HoldScope:
    return HoldScope(hold.outlet_id, hold.date_from, hold.date_to)


def hold_view(hold: LegalHold) -> dict[str, Any]:
    return {"id": hold.id, "reason": hold.reason, "active": hold.released_at is None,
            "scope": {"outlet_id": hold.outlet_id, "from": hold.date_from, "to": hold.date_to},
            "created_at": hold.created_at, "created_by": hold.created_by, "released_at": hold.released_at,
            "released_by": hold.released_by}


async def create_hold(session: AsyncSession, principal: Principal, reason: str, outlet_id: str | None,
                      date_from: date | None, date_to: date | None) -> LegalHold:
    if outlet_id is not None and await OutletRepository(session).get(outlet_id) is None:
        raise ValidationFailed("no such outlet", code="outlet_not_found", field="scope.outlet_id")
    # A run in progress finishes its batch first: nothing it then deletes is covered by this hold.
    await RetentionRepository(session).lock_tenant(principal.tenant_id)
    hold = LegalHold(tenant_id=principal.tenant_id, id=new_id("hold"), reason=reason, outlet_id=outlet_id,
                     date_from=date_from, date_to=date_to, created_at=now(), created_by=principal.actor)
    await HoldRepository(session).add(hold)
    await record(session, principal.tenant_id, principal.actor, "privacy.legal_hold_placed", hold.id,
                 {"outlet_id": outlet_id, "from": date_from.isoformat() if date_from else None,
                  "to": date_to.isoformat() if date_to else None})
    return hold


async def list_holds(session: AsyncSession, include_released: bool, *, limit: int, starting_after: str | None):
    return await HoldRepository(session).page_of(include_released, limit, starting_after)


async def release_hold(session: AsyncSession, principal: Principal, hold_id: str) -> LegalHold:
    """Idempotent: releasing a released hold answers it as it is. Rows it held get a fresh grace period:
    their marks were dropped while it stood, so the next run marks them anew."""
    hold = await HoldRepository(session).get(hold_id)
    if hold is None:
        raise NotFound("no such legal hold", code="legal_hold_not_found")
    if hold.released_at is None:
        hold.released_at, hold.released_by = now(), principal.actor
        await session.flush()
        await record(session, principal.tenant_id, principal.actor, "privacy.legal_hold_released", hold.id)
    return hold


async def active_holds(session: AsyncSession) -> tuple[HoldScope, ...]:
    return tuple(hold_scope(h) for h in await HoldRepository(session).active())


# --- fiscal records ------------------------------------------------------------------------------


async def fiscal_retain_until(session: AsyncSession, jurisdiction: str, moment: datetime) -> tuple[date, str]:
    """(last day of retention, legal citation) of what happened at ``moment``: the floor, or the tenant's
    longer ``fiscal`` policy. Holds are not counted here: they suspend the shredding itself."""
    policy = await PolicyRepository(session).get("fiscal")
    until = retain_until(jurisdiction, moment, _period(policy) if policy else None)
    assert until is not None  # no holds given
    return until, floor_for(jurisdiction).citation


async def invoice_retain_until(session: AsyncSession, jurisdiction: str, issued_at: datetime,
                               outlet_id: str) -> date | None:
    """The tenant's (bound session) last day of retention of a document; None while a hold covers it."""
    policy = await PolicyRepository(session).get("fiscal")
    return retain_until(jurisdiction, issued_at, _period(policy) if policy else None, await active_holds(session),
                        outlet_id=outlet_id)


async def delete_invoice(session: AsyncSession, principal: Principal, invoice_id: str) -> None:
    """Never deletes: a sealed invoice is a leaf of the tenant's Merkle log and a link of its outlet's
    chain, and removing it would make every later proof and the chain itself fail verification. Inside
    its retention the law also requires it; after, its personal parts are shredded (the subject's key is
    destroyed) while the record stays verifiable."""
    invoice = await invoices.get_invoice(session, principal, invoice_id)
    jurisdiction = await _jurisdiction(session, principal)
    until = await invoice_retain_until(session, jurisdiction, invoice.issued_at, invoice.outlet_id)
    floor = floor_for(jurisdiction)
    if until is None or now().date() <= until:
        held = until is None
        raise Conflict(
            "a legal hold covers this invoice" if held else
            f"the law keeps this invoice until {until.isoformat()} ({floor.citation})",
            code="retention_required",
            extra={"retain_until": until.isoformat() if until else None, "legal_hold": held,
                   "jurisdiction": jurisdiction, "citation": floor.citation})
    raise Conflict("a sealed invoice is never deleted: it is part of the verifiable ledger (its outlet's chain and "
                   "the tenant's Merkle log); past its retention its personal data is shredded instead",
                   code="ledger_append_only", extra={"retain_until": until.isoformat()})


# --- the run -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    purger: Purger
    window: Window
    period: Period
    grace_days: int


async def _plans(session: AsyncSession, settings: Settings, tenant_id: str, at: datetime,
                 only: str | None = None) -> list[Plan]:
    policies = await PolicyRepository(session).all()
    holds = await active_holds(session)
    out = []
    for purger in PURGERS.values():
        if only is None or purger.name == only:
            policy = policies.get(purger.category)
            period = _period(policy, purger.default_days)
            out.append(Plan(purger, Window(tenant_id, at, cutoff(at, period), holds), period,
                            _grace(settings, policy)))
    return out


async def step(session: AsyncSession, plan: Plan, name: str, *, dry_run: bool, limit: int) -> tuple[int, list[str]]:
    """One set of one purger: counted (dry run), or acted on for at most ``limit`` keys.
    Returns (count, the first keys)."""
    repo = RetentionRepository(session)
    if split(plan.purger):
        found = await repo.split_keys(plan.purger, plan.window, name)
        if dry_run:
            return len(found), found[:SAMPLE]
        keys = found[:limit]
    else:
        stmt = sets(plan.purger, plan.window)[name]
        if dry_run:
            return await repo.count(stmt), await repo.keys(stmt, SAMPLE)
        keys = await repo.keys(stmt, limit)
    if name == "mark":
        done = await repo.mark(plan.purger, plan.window, keys, plan.window.now + timedelta(days=plan.grace_days))
    elif name == "purge":
        done = await repo.purge(plan.purger, plan.window, keys)
        retention_purged(session, plan.purger.category, done)
    else:
        done = await repo.unmark(plan.purger, plan.window, keys)
    return done, keys


def _entry(plan: Plan) -> dict[str, Any]:
    return {"purger": plan.purger.name, "table": plan.purger.table, "category": plan.purger.category,
            "rule": plan.purger.tag.rule, "years": plan.period.years, "days": plan.period.days,
            "grace_days": plan.grace_days}


async def preview(session: AsyncSession, settings: Settings, tenant_id: str,
                  at: datetime | None = None) -> dict[str, Any]:
    """What a run at ``at`` (default now) would do, on a session bound to the tenant."""
    at = at or now()
    holds = await active_holds(session)
    purgers = []
    for plan in await _plans(session, settings, tenant_id, at):
        entry = _entry(plan)
        for name in STEPS:
            count, sample = await step(session, plan, name, dry_run=True, limit=SAMPLE)
            entry[name] = {"count": count, "sample": sample}
        pending, first = await RetentionRepository(session).pending(plan.purger, tenant_id)
        entry["pending"] = {"count": pending, "next_purge_after": first}
        purgers.append(entry)
    jurisdiction, policy = await _fiscal_period(session, tenant_id)
    shredding = await retention_shredding.preview(session, jurisdiction, policy, holds, at.date(), SAMPLE)
    return {"as_of": at, "held": any(h.whole_tenant for h in holds), "purgers": purgers, "shred": shredding}


async def _fiscal_period(session: AsyncSession, tenant_id: str) -> tuple[str | None, Period | None]:
    """The tenant's jurisdiction and its ``fiscal`` policy: how long its buyers' keys live."""
    tenant = await TenantRepository(session).get(tenant_id)
    policy = (await PolicyRepository(session).all()).get("fiscal")
    return (tenant.jurisdiction if tenant else None), (_period(policy) if policy else None)


async def run_tenant(db: Database, settings: Settings, tenant_id: str, *, at: datetime | None = None,
                     dry_run: bool = False, actor: str = SYSTEM_ACTOR, run_id: str | None = None) -> dict[str, Any]:
    """One tenant's run (or its preview, ``dry_run``). The run starts with the preview and acts only on the
    sets it found non-empty (an idle tenant costs one read transaction). Each batch is a transaction of its own
    that re-reads the policies and holds under the tenant's retention lock, so a hold placed during a run
    protects what it covers from the next batch on."""
    at = at or now()
    async with db.transaction(readonly=True) as session:
        await bind_tenant(session, tenant_id)
        planned = await preview(session, settings, tenant_id, at)
    if dry_run:
        return planned
    counts = {}
    for entry in planned["purgers"]:
        entry.pop("pending")
        for which in STEPS:
            if not entry[which]["count"]:
                continue  # empty a moment ago: anything new there waits for the next run
            total, sample = 0, []
            while True:
                async with db.transaction() as session:
                    await bind_tenant(session, tenant_id)
                    await RetentionRepository(session).lock_tenant(tenant_id)
                    (plan,) = await _plans(session, settings, tenant_id, at, only=entry["purger"])
                    done, keys = await step(session, plan, which, dry_run=False, limit=settings.retention_batch_size)
                total, sample = total + done, (sample + keys)[:SAMPLE]
                if len(keys) < settings.retention_batch_size:
                    break
            entry[which] = {"count": total, "sample": sample}
        if any(entry[w]["count"] for w in STEPS):
            counts[entry["purger"]] = {"marked": entry["mark"]["count"], "purged": entry["purge"]["count"],
                                       "unmarked": entry["unmark"]["count"]}
    shredded = await _shred(db, settings, tenant_id, at) if planned["shred"]["count"] else 0
    if shredded:
        counts["subject_keys"] = {"shredded": shredded}
        planned["shred"]["count"] = shredded
    if counts:  # an idle run leaves no entry: the log records what changed, counts only, never a value
        async with db.transaction() as session:
            await bind_tenant(session, tenant_id)
            await record(session, tenant_id, actor, "privacy.retention_run", run_id or new_id("rrun"),
                         {"as_of": at.isoformat(), "counts": counts})
    return planned


async def _shred(db: Database, settings: Settings, tenant_id: str, at: datetime) -> int:
    """Destroy the keys of the subjects whose retention ended, a batch per transaction (see retention_shredding)."""
    total = 0
    while True:
        async with db.transaction() as session:
            await bind_tenant(session, tenant_id)
            await RetentionRepository(session).lock_tenant(tenant_id)
            # Sealing's lock too: no seal attaches an invoice to a subject whose key goes in this batch.
            await MerkleRepository(session).lock_log(tenant_id)
            jurisdiction, policy = await _fiscal_period(session, tenant_id)
            ids, _ = await retention_shredding.shred_batch(session, tenant_id, jurisdiction, policy,
                                                           await active_holds(session), at,
                                                           settings.retention_batch_size)
            retention_purged(session, "personal", len(ids))
        total += len(ids)
        if len(ids) < settings.retention_batch_size:
            return total


async def run_all(db: Database, settings: Settings, *, at: datetime | None = None, dry_run: bool = False,
                  actor: str = SYSTEM_ACTOR, tenant_ids: list[str] | None = None) -> dict[str, Any]:
    """Every tenant's run, one after the other; one tenant's failure is logged and does not stop the rest."""
    at, run_id = at or now(), new_id("rrun")
    if tenant_ids is None:
        async with db.transaction(readonly=True) as session:
            await bind_platform(session)
            tenant_ids = await RetentionRepository(session).tenant_ids()
    tenants, failed = {}, []
    totals = {"marked": 0, "purged": 0, "unmarked": 0}
    for tenant_id in tenant_ids:
        try:
            result = await run_tenant(db, settings, tenant_id, at=at, dry_run=dry_run, actor=actor, run_id=run_id)
        except Exception:
            log.exception("retention_run_failed", tenant_id=tenant_id)
            failed.append(tenant_id)
            continue
        tenants[tenant_id] = result
        for entry in result["purgers"]:
            for which, total in (("mark", "marked"), ("purge", "purged"), ("unmark", "unmarked")):
                totals[total] += entry[which]["count"]
    log.info("retention_run", run_id=run_id, dry_run=dry_run, tenants=len(tenant_ids), failed=len(failed), **totals)
    return {"run_id": run_id, "as_of": at, "dry_run": dry_run, "totals": totals, "failed": failed,
            "tenants": tenants}


def summary(result: dict[str, Any]) -> str:
    """The run's totals as stored on the schedule row: counts, no ids."""
    return json.dumps({"run_id": result["run_id"], "as_of": result["as_of"].isoformat(), "totals": result["totals"],
                       "tenants": len(result["tenants"]), "failed": len(result["failed"])})
