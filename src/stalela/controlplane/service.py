"""The tenant registry's use cases (operator only): register a tenant in either tier, list, read, change
its name and limits. Services flush, never commit."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from stalela.accounts import service as accounts
from stalela.audit.service import record
from stalela.config import Settings
from stalela.controlplane import placement as placements
from stalela.controlplane import provisioning
from stalela.controlplane import schemas
from stalela.controlplane.models import TenantProvisioning
from stalela.controlplane.repository import ProvisioningRepository, RegistryRepository
from stalela.db.base import utcnow
from stalela.errors import Conflict, NotFound
from stalela.fiscal.signing import registry as signing_registry
from stalela.kit import canonical
from stalela.kit.ids import new_id
from stalela.tenancy.context import bind_platform, bind_tenant
from stalela.tenancy.models import ApiKey, Tenant


@dataclass
class Registered:
    tenant: Tenant
    job: TenantProvisioning
    api_key: str | None
    api_key_id: str | None
    replayed: bool


def _fingerprint(data: schemas.TenantRegister) -> str:
    return hashlib.sha256(canonical.dumps(data.model_dump(mode="json"))).hexdigest()


async def register(session: AsyncSession, settings: Settings, data: schemas.TenantRegister,
                   idempotency_key: str | None) -> Registered:
    """A shared tenant is active at once (as before the tiers); a dedicated one is registered here and
    provisioned by a job (controlplane.provisioning). Either is born with its first API key."""
    fingerprint = _fingerprint(data)
    if idempotency_key is not None:
        earlier = await ProvisioningRepository(session).by_idempotency_key(idempotency_key)
        if earlier is not None:
            if earlier.request_hash != fingerprint:
                raise Conflict("this Idempotency-Key was used with another request", code="idempotency_key_reused",
                               field="Idempotency-Key")
            tenant = await get_tenant(session, earlier.tenant_id)
            key_id = (await session.execute(select(ApiKey.id).where(ApiKey.tenant_id == tenant.id)
                                            .order_by(ApiKey.created_at, ApiKey.id).limit(1))).scalar()
            return Registered(tenant, earlier, None, key_id, replayed=True)
    tax_id, vat_condition = accounts.jurisdiction_fields(data)
    dedicated = data.tier == "dedicated"
    if data.target is not None and not dedicated:
        raise Conflict("a target server is for the dedicated tier", code="field_not_applicable", field="target")
    tenant = Tenant(id=new_id("ten"), name=data.name, tax_id=tax_id, jurisdiction=data.jurisdiction,
                    vat_condition=vat_condition, tier=data.tier, status="provisioning" if dedicated else "active")
    if dedicated:
        tenant.placement = placements.choose(settings, tenant.id, await RegistryRepository(session).placements(),
                                             data.target)
    session.add(tenant)
    await session.flush()
    created = await accounts.new_api_key(session, tenant.id, "default", None)
    job = provisioning.start(session, tenant.id, idempotency_key=idempotency_key, request_hash=fingerprint,
                             dedicated=dedicated)
    if not dedicated:
        await bind_tenant(session, tenant.id)
        await signing_registry.create_key(session, settings, tenant.id)
        await record(session, tenant.id, "operator", "tenant.created", tenant.id, {"tier": "shared"})
        await bind_platform(session)
    await session.flush()
    return Registered(tenant, job, created.secret, created.key.id, replayed=False)


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


async def search(session: AsyncSession, filters: schemas.TenantListFilters, *, limit: int,
                 starting_after: str | None) -> tuple[list[Tenant], bool]:
    if starting_after is not None and await RegistryRepository(session).get(starting_after) is None:
        # An unknown cursor would page from the start forever: say so.
        raise NotFound("no tenant with the id given as starting_after", code="cursor_not_found",
                       field="starting_after")
    return await RegistryRepository(session).search(status=filters.status, tier=filters.tier,
                                                    jurisdiction=filters.jurisdiction, limit=limit,
                                                    starting_after=starting_after)


async def patch(session: AsyncSession, tenant_id: str, data: schemas.TenantPatch) -> Tenant:
    tenant = await RegistryRepository(session).get_for_update(tenant_id)
    if tenant is None:
        raise NotFound("no such tenant", code="tenant_not_found")
    given = data.model_fields_set
    if "name" in given and data.name is not None and data.name != tenant.name:
        tenant.name, tenant.updated_at = data.name, utcnow()
        await session.flush()
    if given & {"rate_limit_per_second", "rate_limit_burst"}:
        # Both numbers are set together: a field left out keeps its current value.
        rate = data.rate_limit_per_second if "rate_limit_per_second" in given else tenant.rate_limit_per_second
        burst = data.rate_limit_burst if "rate_limit_burst" in given else tenant.rate_limit_burst
        tenant = await accounts.set_tenant_limits(session, tenant_id, rate, burst)
    return tenant
