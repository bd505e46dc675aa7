"""Account use cases: tenants, outlets, API keys. Services flush, never commit: the caller's boundary owns the transaction."""
from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from stalela.audit import platform as platform_audit
from stalela.audit.service import record
from stalela.auth.apikeys import generate_api_key
from stalela.auth.principal import Principal
from stalela.auth.service import API_KEYS
from stalela.config import Settings
from stalela.db.base import utcnow
from stalela.fiscal.core.reports import local_date
from stalela.fiscal.jurisdictions import cuit, get_jurisdiction
from stalela.fiscal.signing import registry as signing_registry
from stalela.auth.permissions import DEFAULT_SCOPES, OPT_IN_SCOPES, check_not_exceeding, grantable_scopes, key_permissions
from stalela.errors import Conflict, Forbidden, NotFound, ValidationFailed
from stalela.kit.ids import new_id
from stalela.kit.money import decimal_str
from stalela.outbox.service import enqueue
from stalela.accounts import schemas
from stalela.tenancy.context import acting_as, bind_tenant, hold_tenant_shared
from stalela.tenancy.models import ApiKey, Outlet, Tenant
from stalela.tenancy.repository import ApiKeyRepository, OutletRepository, TenantRepository


@dataclass
class CreatedKey:
    key: ApiKey
    secret: str


async def create_tenant(
    session: AsyncSession, settings: Settings, data: schemas.TenantCreate, *, actor: str = "operator:cli"
) -> tuple[Tenant, CreatedKey]:
    """A tenant is born with its first API key and its first signing key, in one transaction.

    ``actor`` as the platform audit log names it; the default is for the command line and scripts that
    hold the database itself (``stalela tenant create``, benchmarks)."""
    tax_id, vat_condition = jurisdiction_fields(data)
    tenant = Tenant(id=new_id("ten"), name=data.name, tax_id=tax_id, jurisdiction=data.jurisdiction,
                    vat_condition=vat_condition)
    await TenantRepository(session).add(tenant)
    await bind_tenant(session, tenant.id)
    created = await new_api_key(session, tenant.id, "default", None)
    await signing_registry.create_key(session, settings, tenant.id)
    await platform_audit.record(session, actor, "tenant.created", tenant.id, {"jurisdiction": data.jurisdiction})
    return tenant, created


def jurisdiction_fields(data: schemas.TenantCreate) -> tuple[str, str | None]:
    """The tax id as stored and the issuer's IVA condition, checked by the jurisdiction's rules."""
    if data.jurisdiction != "AR":
        if data.ar is not None:
            raise ValidationFailed("'ar' is for Argentine tenants only", code="field_not_applicable", field="ar")
        return data.tax_id, None
    if data.ar is None:
        raise ValidationFailed("an Argentine tenant states its IVA condition: ar.vat_condition",
                               code="vat_condition_required", field="ar.vat_condition")
    # Stored as the 11 digits ARCA uses everywhere (Auth.Cuit, the QR, the certificate's serialNumber).
    try:
        digits = cuit.check_cuit(data.tax_id)
    except cuit.InvalidCuit as exc:
        raise ValidationFailed(f"not a CUIT: {exc.detail}", code="tax_id_invalid", field="tax_id") from None
    return digits, data.ar.vat_condition


async def get_tenant(session: AsyncSession, tenant_id: str) -> Tenant:
    tenant = await TenantRepository(session).get(tenant_id)
    if tenant is None:
        raise NotFound("no such tenant", code="tenant_not_found")
    return tenant


async def set_tenant_status(session: AsyncSession, tenant_id: str, status: str, *, actor: str) -> Tenant:
    """``actor``: the operator, as the platform audit log names them (``Principal.platform_actor``)."""
    await hold_tenant_shared(session, tenant_id)  # before the row: a move's switch takes them in that order
    tenant = await TenantRepository(session).get_for_update(tenant_id)
    if tenant is None:
        raise NotFound("no such tenant", code="tenant_not_found")
    if tenant.status in ("provisioning", "deprovisioning", "deleted"):
        raise Conflict(f"tenant is {tenant.status}", code="tenant_status_conflict")
    tenant.status = status
    API_KEYS.clear()  # this process stops honouring cached keys of the tenant at once
    tenant.updated_at = utcnow()
    await session.flush()
    async with acting_as(session, tenant.id):  # its audit log is in its own database if dedicated
        await record(session, tenant.id, "operator", f"tenant.{status}", tenant.id)
    await platform_audit.record(session, actor, f"tenant.{status}", tenant.id)
    return tenant


RATE_LIMIT_MAX = Decimal(100_000)
BURST_MAX = 1_000_000
_MILLI = Decimal("0.001")


@dataclass(frozen=True)
class TenantLimits:
    """A tenant's API rate limit in force, and whether each number is the settings' default."""

    per_second: Decimal
    burst: int
    per_second_default: bool
    burst_default: bool

    @property
    def rate_text(self) -> str:
        return decimal_str(self.per_second)


def tenant_limits(tenant: Tenant, settings: Settings) -> TenantLimits:
    own_rate, own_burst = tenant.rate_limit_per_second, tenant.rate_limit_burst
    # str(): the setting is a float, and Decimal(float) would show its binary expansion
    return TenantLimits(own_rate if own_rate is not None else Decimal(str(settings.rate_limit_per_second)),
                        own_burst if own_burst is not None else settings.rate_limit_burst,
                        own_rate is None, own_burst is None)


def _checked_rate(value: Decimal | str | float | None) -> Decimal | None:
    field = "rate_limit_per_second"
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValidationFailed("rate_limit_per_second: a decimal number", code="rate_limit_invalid", field=field)
    try:
        # str() of a float is its shortest round trip (0.1, not 0.1000000000000000055...)
        rate = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except ArithmeticError:
        raise ValidationFailed("rate_limit_per_second: a decimal number", code="rate_limit_invalid",
                               field=field) from None
    if not rate.is_finite() or not 0 < rate <= RATE_LIMIT_MAX:
        raise ValidationFailed(f"rate_limit_per_second: more than 0 and at most {RATE_LIMIT_MAX} requests per second",
                               code="rate_limit_invalid", field=field)
    if rate != rate.quantize(_MILLI):
        raise ValidationFailed("rate_limit_per_second: at most 3 decimal places", code="rate_limit_invalid",
                               field=field)
    return rate.quantize(_MILLI)


def _checked_burst(value: int | None) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= BURST_MAX):
        raise ValidationFailed(f"rate_limit_burst: a whole number from 1 to {BURST_MAX}", code="rate_limit_invalid",
                               field="rate_limit_burst")
    return value


async def set_tenant_limits(session: AsyncSession, tenant_id: str, per_second: Decimal | str | float | None,
                            burst: int | None, *, actor: str = "operator") -> Tenant:
    """Set the tenant's API rate limit (per API key and per user): ``None`` goes back to the settings'
    default. Both numbers are set: a caller changing one passes the tenant's other as it is. The rate
    may come as typed (a form's text, a JSON number); it is stored as a Decimal of 3 places.

    This process's cached API keys are dropped at once; other processes pick the numbers up within
    STALELA_AUTH_CACHE_SECONDS (users are looked up on every request)."""
    rate, burst = _checked_rate(per_second), _checked_burst(burst)
    await hold_tenant_shared(session, tenant_id)  # before the row: a move's switch takes them in that order
    tenant = await TenantRepository(session).get_for_update(tenant_id)
    if tenant is None:
        raise NotFound("no such tenant", code="tenant_not_found")
    if tenant.status == "deleted":
        raise Conflict("tenant is deleted", code="tenant_status_conflict")
    before = _limits_view(tenant.rate_limit_per_second, tenant.rate_limit_burst)
    after = _limits_view(rate, burst)
    if before == after:
        return tenant
    tenant.rate_limit_per_second, tenant.rate_limit_burst = rate, burst
    tenant.updated_at = utcnow()
    API_KEYS.clear()
    await session.flush()
    async with acting_as(session, tenant.id):  # its audit log is in its own database, if dedicated
        await record(session, tenant.id, actor, "tenant.rate_limit_set", tenant.id, {**after, "previous": before})
    return tenant


def _limits_view(rate: Decimal | None, burst: int | None) -> dict:
    return {"rate_limit_per_second": None if rate is None else decimal_str(rate), "rate_limit_burst": burst}


async def list_tenants(session: AsyncSession, *, limit: int, starting_after: str | None) -> tuple[list[Tenant], bool]:
    return await TenantRepository(session).page(None, limit=limit, starting_after=starting_after)


# --- outlets -------------------------------------------------------------------------------------


async def create_outlet(session: AsyncSession, principal: Principal, data: schemas.OutletCreate) -> Outlet:
    repo = OutletRepository(session)
    jurisdiction = get_jurisdiction(principal.jurisdiction or "CD")
    if jurisdiction.needs_point_of_sale and data.pos_number is None:
        raise ValidationFailed(f"a {jurisdiction.code} outlet is a point of sale: give its pos_number",
                               code="pos_number_required", field="pos_number")
    if not jurisdiction.needs_point_of_sale and data.pos_number is not None:
        raise ValidationFailed(f"{jurisdiction.code} outlets have no point-of-sale number",
                               code="field_not_applicable", field="pos_number")
    if await repo.get_by_code(data.code) is not None:
        raise Conflict(f"an outlet with code {data.code!r} already exists", code="outlet_code_taken", field="code")
    if data.pos_number is not None and await repo.get_by_pos_number(data.pos_number) is not None:
        raise Conflict(f"point of sale {data.pos_number} is already an outlet", code="pos_number_taken",
                       field="pos_number")
    timezone = data.timezone or jurisdiction.default_timezone
    now = utcnow()  # explicit: reports refuse business days before this one (tests move this clock)
    outlet = Outlet(
        tenant_id=principal.tenant_id,
        id=new_id("out"),
        code=data.code,
        name=data.name,
        address=data.address,
        timezone=timezone,
        pos_number=data.pos_number,
        first_business_day=local_date(now, timezone),
        created_at=now,
    )
    try:
        async with session.begin_nested():
            await repo.add(outlet)
    except IntegrityError:  # a concurrent request took the code (or the point of sale) between check and insert
        if data.pos_number is not None and await repo.get_by_pos_number(data.pos_number) is not None:
            raise Conflict(f"point of sale {data.pos_number} is already an outlet", code="pos_number_taken",
                           field="pos_number")
        raise Conflict(f"an outlet with code {data.code!r} already exists", code="outlet_code_taken", field="code")
    if data.pos_number is not None:
        # The authority agent aligns the new point of sale's unused series with the authority's numbering
        # when the tenant has credentials (stalela.authority.arca.series), asynchronously: a sale sealed
        # before that numbers from 1 (docs/jurisdictions/ar-operations.md, "Alignment").
        enqueue(session, principal.tenant_id, "arca.point_of_sale_created", {"outlet_id": outlet.id})
    return outlet


async def get_outlet(session: AsyncSession, principal: Principal, outlet_id: str) -> Outlet:
    outlet = await OutletRepository(session).get(outlet_id)
    # A restricted key sees only its own outlet; anything else looks absent.
    if outlet is None or not principal.can_use_outlet(outlet.id):
        raise NotFound("no such outlet", code="outlet_not_found")
    return outlet


async def list_outlets(
    session: AsyncSession, principal: Principal, *, limit: int, starting_after: str | None
) -> tuple[list[Outlet], bool]:
    repo = OutletRepository(session)
    stmt = None
    if principal.outlet_id is not None:
        stmt = select(Outlet).where(Outlet.id == principal.outlet_id)
    elif principal.outlet_ids is not None:
        stmt = select(Outlet).where(Outlet.id.in_(sorted(principal.outlet_ids)))
    return await repo.page(stmt, limit=limit, starting_after=starting_after)


async def update_outlet(
    session: AsyncSession, principal: Principal, outlet_id: str, data: schemas.OutletUpdate
) -> Outlet:
    outlet = await get_outlet(session, principal, outlet_id)
    changes = data.model_dump(exclude_unset=True)
    for name in ("name", "timezone", "status"):
        if name in changes and changes[name] is None:
            raise ValidationFailed(f"{name} cannot be null", code="field_not_nullable", field=name)
    now = utcnow()
    if "timezone" in changes:
        # Sales sealed from now on go to days of the new timezone, which may lie before the outlet's first
        # business day (a move westwards across the date line): those days must stay closable, so the
        # bound only ever goes down. It never rises: days that already have sales stay reportable.
        outlet.first_business_day = min(outlet.first_business_day, local_date(now, changes["timezone"]))
    for name, value in changes.items():
        setattr(outlet, name, value)
    outlet.updated_at = now
    await session.flush()
    return outlet


# --- API keys ------------------------------------------------------------------------------------


async def new_api_key(session: AsyncSession, tenant_id: str, name: str, outlet_id: str | None,
                   scopes: list[str] | None = None) -> CreatedKey:
    secret, prefix, key_hash = generate_api_key()
    key = ApiKey(
        tenant_id=tenant_id, id=new_id("key"), name=name, prefix=prefix, key_hash=key_hash, outlet_id=outlet_id,
        scopes=json.dumps(scopes) if scopes is not None else None,
    )
    await ApiKeyRepository(session).add(key)
    return CreatedKey(key=key, secret=secret)


async def create_api_key(session: AsyncSession, principal: Principal, data: schemas.ApiKeyCreate) -> CreatedKey:
    if data.outlet_id is not None and await OutletRepository(session).get(data.outlet_id) is None:
        raise ValidationFailed("no such outlet", code="outlet_not_found", field="outlet_id")
    grantable = grantable_scopes(principal)
    default = grantable - OPT_IN_SCOPES  # an opt-in scope only when asked for by name
    scopes = data.scopes if data.scopes is not None else (None if default == DEFAULT_SCOPES else sorted(default))
    if scopes is not None and not set(scopes) <= grantable:
        raise Forbidden(f"a key cannot get more than its creator may do: {sorted(set(scopes) - grantable)} "
                        "exceed(s) your permissions", code="scope_exceeds_caller", field="scopes")
    created = await new_api_key(session, principal.tenant_id, data.name, data.outlet_id, scopes)
    await record(session, principal.tenant_id, principal.actor, "api_key.created", created.key.id,
                 {"name": data.name, "outlet_id": data.outlet_id, "scopes": scopes})
    return created


async def list_api_keys(session: AsyncSession, *, limit: int, starting_after: str | None) -> tuple[list[ApiKey], bool]:
    return await ApiKeyRepository(session).page(None, limit=limit, starting_after=starting_after)


async def api_key_views(session: AsyncSession, keys: list[ApiKey]) -> list[schemas.ApiKeyOut]:
    """Keys as listed: their effective scopes and their outlet's code (one query for the page).
    An outlet is never deleted, but a key could name one of another database after a move: no code."""
    outlets = await OutletRepository(session).get_many({k.outlet_id for k in keys if k.outlet_id})
    return [schemas.ApiKeyOut.of(k, outlets[k.outlet_id].code if k.outlet_id in outlets else None) for k in keys]


async def api_key_view(session: AsyncSession, key: ApiKey) -> schemas.ApiKeyOut:
    return (await api_key_views(session, [key]))[0]


async def get_api_key(session: AsyncSession, key_id: str) -> ApiKey:
    key = await ApiKeyRepository(session).get(key_id)
    if key is None:
        raise NotFound("no such API key", code="api_key_not_found")
    return key


async def revoke_api_key(session: AsyncSession, key_id: str, actor: Principal) -> ApiKey:
    key = await ApiKeyRepository(session).get_for_update(key_id)
    if key is None:
        raise NotFound("no such API key", code="api_key_not_found")
    scopes = frozenset(json.loads(key.scopes)) if key.scopes else None
    check_not_exceeding(actor, key_permissions(scopes, key.outlet_id is not None), "this API key")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        API_KEYS.clear()
        await session.flush()
        await record(session, key.tenant_id, actor.actor, "api_key.revoked", key.id)
    return key
