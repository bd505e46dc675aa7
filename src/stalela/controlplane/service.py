"""The tenant registry's use cases (operator only): register a tenant in either tier, list, read, change
its name and limits. Services flush, never commit."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from stalela.accounts import service as accounts
from stalela.audit import platform as platform_audit
from stalela.audit.service import record
from stalela.config import Settings
from stalela.controlplane import placement as placements
from stalela.controlplane import provisioning
from stalela.controlplane import schemas
from stalela.controlplane.models import TenantProvisioning
from stalela.controlplane.repository import ProvisioningRepository, RegistryRepository
from stalela.db.base import utcnow
from stalela.db.session import DATABASE
from stalela.errors import Conflict, NotFound, ValidationFailed
from stalela.fiscal.signing import registry as signing_registry
from stalela.i18n import LANGUAGES, N_
from stalela.kit import canonical
from stalela.kit.ids import new_id
from stalela.tenancy.context import bind_platform, bind_tenant, hold_tenant_shared
from stalela.tenancy.models import Tenant


@dataclass
class Registered:
    tenant: Tenant
    job: TenantProvisioning
    api_key: str | None
    api_key_id: str | None
    replayed: bool


def checked_locale(value: str | None) -> str | None:
    """A language Stalela ships, or None (the default); anything else is the 422 ``invalid_locale``.
    Tenants and operators store it alike (users too, through their own API)."""
    if value is not None and value not in LANGUAGES:
        # N_: a constant detail, translated whole where a console shows it (i18n.problems.localize).
        raise ValidationFailed(N_("locale: one of fr, es, en, or null for the default"), code="invalid_locale",
                               field="locale")
    return value


def _fingerprint(data: schemas.TenantRegister) -> str:
    # Without a locale, the fingerprint of a request made before tenants had one: a retry across an
    # upgrade is still the same request.
    body = data.model_dump(mode="json", exclude={"locale"} if data.locale is None else None)
    return hashlib.sha256(canonical.dumps(body)).hexdigest()


async def register(session: AsyncSession, settings: Settings, data: schemas.TenantRegister,
                   idempotency_key: str | None, *, actor: str = "operator:cli") -> Registered:
    """A shared tenant is active at once (as before the tiers); a dedicated one is registered here and
    provisioned by a job (controlplane.provisioning). Either is born with its first API key."""
    checked_locale(data.locale)
    fingerprint = _fingerprint(data)
    repo = ProvisioningRepository(session)
    if idempotency_key is not None and (earlier := await repo.by_idempotency_key(idempotency_key)) is not None:
        return await _replay(session, earlier, fingerprint)
    tax_id, vat_condition = accounts.jurisdiction_fields(data)
    if data.target is not None and data.tier != "dedicated":
        raise ValidationFailed("a target server is for the dedicated tier", code="field_not_applicable",
                               field="target")
    try:
        # In a savepoint: a concurrent request with the same key (the unique index on the job's key) must
        # leave nothing of this one behind, neither tenant nor key.
        async with session.begin_nested():
            done = await _create(session, settings, data, tax_id, vat_condition, idempotency_key, fingerprint)
            await platform_audit.record(session, actor, "tenant.created", done.tenant.id,
                                        {"tier": data.tier, "placement": done.tenant.placement,
                                         "locale": data.locale})
            return done
    except IntegrityError:
        if idempotency_key is None:
            raise
        # PostgreSQL made our insert wait for the other transaction, which committed: its job is visible now.
        earlier = await repo.by_idempotency_key(idempotency_key)
        if earlier is None:
            raise Conflict("a request with this Idempotency-Key is in progress: retry", code="idempotency_key_in_use",
                           field="Idempotency-Key", headers={"Retry-After": "1"}) from None
        return await _replay(session, earlier, fingerprint)


async def _create(session: AsyncSession, settings: Settings, data: schemas.TenantRegister, tax_id: str,
                  vat_condition: str | None, idempotency_key: str | None, fingerprint: str) -> Registered:
    dedicated = data.tier == "dedicated"
    tenant = Tenant(id=new_id("ten"), name=data.name, tax_id=tax_id, jurisdiction=data.jurisdiction,
                    vat_condition=vat_condition, locale=data.locale, tier=data.tier,
                    status="provisioning" if dedicated else "active")
    if dedicated:
        tenant.placement = placements.choose(settings, tenant.id, await RegistryRepository(session).placements(),
                                             data.target)
    session.add(tenant)
    await session.flush()
    # The job row first: it holds the Idempotency-Key, so a concurrent duplicate fails here, before the keys.
    job = provisioning.start(session, tenant.id, idempotency_key=idempotency_key, request_hash=fingerprint,
                             dedicated=dedicated)
    await session.flush()
    created = await accounts.new_api_key(session, tenant.id, "default", None)
    if not dedicated:
        await bind_tenant(session, tenant.id)
        await signing_registry.create_key(session, settings, tenant.id)
        await record(session, tenant.id, "operator", "tenant.created", tenant.id, {"tier": "shared"})
        await bind_platform(session)
    await session.flush()
    return Registered(tenant, job, created.secret, created.key.id, replayed=False)


async def _replay(session: AsyncSession, earlier: TenantProvisioning, fingerprint: str) -> Registered:
    if earlier.request_hash != fingerprint:
        raise Conflict("this Idempotency-Key was used with another request", code="idempotency_key_reused",
                       field="Idempotency-Key")
    tenant = await get_tenant(session, earlier.tenant_id)
    key_id = await RegistryRepository(session).first_api_key(tenant.id)
    return Registered(tenant, earlier, None, key_id, replayed=True)


async def get_tenant(session: AsyncSession, tenant_id: str) -> Tenant:
    tenant = await RegistryRepository(session).get(tenant_id)
    if tenant is None:
        raise NotFound("no such tenant", code="tenant_not_found")
    return tenant


async def describe(session: AsyncSession, tenant: Tenant) -> schemas.RegistryTenantOut:
    out = schemas.RegistryTenantOut.model_validate(tenant)
    job = await ProvisioningRepository(session).get(tenant.id)
    if job is not None:
        out.provisioning = schemas.ProvisioningOut(step=job.step, status=job.status, attempts=job.attempts,
                                                   error=job.error)
    if tenant.placement:
        out.server = placements.server_of(tenant.placement)
    return out


async def overview(session: AsyncSession, tenants: list[Tenant]) -> dict[str, dict]:
    """Where each tenant lives and its provisioning job (the /ops tenants page), by tenant id."""
    jobs = await ProvisioningRepository(session).of_tenants([t.id for t in tenants]) if tenants else {}
    return {t.id: {"server": placements.server_of(t.placement) if t.placement else None, "job": jobs.get(t.id)}
            for t in tenants}


async def search(session: AsyncSession, filters: schemas.TenantListFilters, *, limit: int,
                 starting_after: str | None) -> tuple[list[Tenant], bool]:
    return await RegistryRepository(session).search(status=filters.status, tier=filters.tier,
                                                    jurisdiction=filters.jurisdiction, limit=limit,
                                                    starting_after=starting_after)


async def patch(session: AsyncSession, tenant_id: str, data: schemas.TenantPatch, *,
                actor: str = "operator:cli") -> Tenant:
    await hold_tenant_shared(session, tenant_id)  # before the row: a move's switch takes them in that order
    tenant = await RegistryRepository(session).get_for_update(tenant_id)
    if tenant is None:
        raise NotFound("no such tenant", code="tenant_not_found")
    given = data.model_fields_set
    renamed = "name" in given and data.name is not None and data.name != tenant.name
    language_changed = "locale" in given and checked_locale(data.locale) != tenant.locale
    if renamed or language_changed:
        if renamed:
            tenant.name = data.name
        if language_changed:
            tenant.locale = data.locale
        tenant.updated_at = utcnow()
        await session.flush()
        await _refresh_copy(session, tenant)
    if given & {"rate_limit_per_second", "rate_limit_burst"}:
        # Both numbers are set together: a field left out keeps its current value.
        rate = data.rate_limit_per_second if "rate_limit_per_second" in given else tenant.rate_limit_per_second
        burst = data.rate_limit_burst if "rate_limit_burst" in given else tenant.rate_limit_burst
        tenant = await accounts.set_tenant_limits(session, tenant_id, rate, burst)
    if given:
        await platform_audit.record(session, actor, "tenant.updated", tenant_id,
                                    data.model_dump(mode="json", include=given))
    return tenant


async def _refresh_copy(session: AsyncSession, tenant: Tenant) -> None:
    """A dedicated tenant's copy of its row follows the control plane's. It is written before this
    transaction commits: should the commit fail, the copy holds the newer values, which nothing reads as
    the truth, and the next change rewrites it."""
    if tenant.placement and await _has_schema(session, tenant.id):
        await provisioning.copy_tenant_row(session.info[DATABASE], tenant.id, tenant.placement,
                                           provisioning.tenant_row(tenant))


async def _has_schema(session: AsyncSession, tenant_id: str) -> bool:
    # Before its migrations a database has no tenants table; the seeding step copies the row then.
    job = await ProvisioningRepository(session).get(tenant_id)
    return job is None or job.step in ("migrated", "seeded", "active")
