"""What the CLI does against the database, through the same services as the HTTP API."""
from __future__ import annotations

import json
import os
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

from stalela.audit.service import record
from stalela.auth.principal import Principal
from stalela.cli.output import err
from stalela.config import Settings
from stalela.db.session import Database
from stalela.fiscal.signing import registry
from stalela.fiscal.signing.repository import SigningKeyRepository
from stalela.accounts import schemas, service
from stalela.tenancy.context import bind_platform, bind_tenant
from stalela.tenancy.repository import TenantRepository

console = err  # the demo banner is a diagnostic of `stalela serve`: stderr


@asynccontextmanager
async def _session(settings: Settings) -> AsyncIterator:
    db = Database.from_settings(settings)
    try:
        async with db.transaction() as session:
            yield session
    finally:
        await db.dispose()


async def create_tenant(settings: Settings, name: str, tax_id: str, jurisdiction: str,
                        vat_condition: str | None = None) -> dict[str, Any]:
    """A shared tenant, as ``stalela tenant create`` makes it (cli/tenants.py)."""
    from stalela.cli import tenants

    return await tenants.create_tenant(settings, name, tax_id, jurisdiction, vat_condition)


async def create_outlet(
    settings: Settings, tenant_id: str, code: str, name: str, timezone: str | None, address: str | None,
    pos_number: int | None = None,
) -> dict[str, Any]:
    data = schemas.OutletCreate(code=code, name=name, timezone=timezone, address=address, pos_number=pos_number)
    async with _session(settings) as session:
        await bind_platform(session)
        tenant = await service.get_tenant(session, tenant_id)
        await bind_tenant(session, tenant_id)
        # The tenant's jurisdiction decides what an outlet needs (an Argentine one is a point of sale).
        principal = Principal(kind="api_key", tenant_id=tenant_id, jurisdiction=tenant.jurisdiction)
        outlet = await service.create_outlet(session, principal, data)
        return schemas.OutletOut.model_validate(outlet).model_dump(mode="json")


async def create_api_key(settings: Settings, tenant_id: str, name: str, outlet_id: str | None) -> dict[str, Any]:
    data = schemas.ApiKeyCreate(name=name, outlet_id=outlet_id)
    async with _session(settings) as session:
        await bind_platform(session)
        await service.get_tenant(session, tenant_id)
        await bind_tenant(session, tenant_id)
        created = await service.create_api_key(session, Principal(kind="api_key", tenant_id=tenant_id), data)
        out = schemas.ApiKeyOut.model_validate(created.key).model_dump(mode="json")
        return {**out, "api_key": created.secret}


async def revoke_api_key(settings: Settings, tenant_id: str, key_id: str) -> dict[str, Any]:
    async with _session(settings) as session:
        await bind_tenant(session, tenant_id)
        key = await service.revoke_api_key(session, key_id, Principal(kind="operator"))
        return schemas.ApiKeyOut.model_validate(key).model_dump(mode="json")


DEMO_FILE = "demo-credentials.json"


async def ensure_demo(settings: Settings, host: str, port: int) -> None:
    """On an empty embedded database: a demo tenant, outlet and key, printed with a curl example.

    The secret is kept in a 0600 file under the data directory so later starts can print it again
    (only for the embedded demo; real keys are never stored in clear).
    """
    path = Path(settings.data_dir) / DEMO_FILE
    async with _session(settings) as session:
        await bind_platform(session)
        empty = await TenantRepository(session).count() == 0
        if empty:
            tenant, key = await service.create_tenant(
                session, settings, schemas.TenantCreate(name="Demo Merchant SARL", tax_id="A1234567B", jurisdiction="CD")
            )
            outlet = await service.create_outlet(
                session,
                Principal(kind="api_key", tenant_id=tenant.id),
                schemas.OutletCreate(code="MAIN", name="Demo shop, Gombe", timezone="Africa/Kinshasa"),
            )
            creds = {"tenant_id": tenant.id, "outlet_id": outlet.id, "api_key": key.secret}
    if empty:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(creds, fh, indent=2)
    if not path.exists():
        return
    creds = json.loads(path.read_text())
    base = f"http://{host}:{port}"
    console.print("\n[bold]Stalela demo tenant[/bold] (credentials in " + str(path) + ")", highlight=False)
    console.print(f"  tenant  {creds['tenant_id']}\n  outlet  {creds['outlet_id']}\n  api key {creds['api_key']}", highlight=False)
    console.print("\nTry it:", highlight=False)
    console.print(f"  curl -s {base}/v1/outlets -H 'Authorization: Bearer {creds['api_key']}'\n", highlight=False, soft_wrap=True)


async def rotate_key(settings: Settings, tenant_id: str) -> dict[str, Any]:
    async with _session(settings) as session:
        await bind_platform(session)
        await service.get_tenant(session, tenant_id)
        await bind_tenant(session, tenant_id)
        key = await registry.create_key(session, settings, tenant_id)
        await record(session, tenant_id, "operator:cli", "signing_key.rotated", key.id, {"backend": key.backend})
        return {**registry.public_view(key), "backend": key.backend}


async def list_keys(settings: Settings, tenant_id: str) -> list[dict[str, Any]]:
    async with _session(settings) as session:
        await bind_platform(session)
        await service.get_tenant(session, tenant_id)
        await bind_tenant(session, tenant_id)
        return [registry.public_view(k) for k in await SigningKeyRepository(session).all_keys()]


async def outbox_dead(settings: Settings, topic: str | None, limit: int) -> list[dict[str, Any]]:
    from stalela.outbox import service as outbox

    async with _session(settings) as session:
        await bind_platform(session)
        rows, _ = await outbox.dead_letters(session, topic, limit, None)
        return rows


async def outbox_replay(settings: Settings, ids: list[str] | None, topic: str | None) -> int:
    from stalela.outbox import service as outbox

    async with _session(settings) as session:
        await bind_platform(session)
        return await outbox.replay(session, ids, topic, actor="operator:cli")


async def register_device(settings: Settings, outlet_id: str, nim: str, url: str, token: str) -> dict[str, Any]:
    from sqlalchemy import select

    from stalela.authority import service as authority
    from stalela.authority.endpoints import DeviceIn
    from stalela.tenancy.models import Outlet

    data = DeviceIn(nim=nim, base_url=url, token=token)  # the same validation as the API
    async with _session(settings) as session:
        await bind_platform(session)
        outlet = (await session.execute(select(Outlet).where(Outlet.id == outlet_id))).scalar_one_or_none()
        if outlet is None:
            from stalela.errors import NotFound

            raise NotFound("no such outlet", code="outlet_not_found")
        await bind_tenant(session, outlet.tenant_id)
        device = await authority.register_device(session, settings, Principal(kind="api_key", tenant_id=outlet.tenant_id),
                                                 outlet_id, data.nim, str(data.base_url).rstrip("/"), data.token)
        return authority.device_view(device)


async def create_user(settings: Settings, tenant_id: str, email: str, name: str, role: str,
                      password: str) -> dict[str, Any]:
    from stalela.auth import users

    async with _session(settings) as session:
        await bind_platform(session)
        await service.get_tenant(session, tenant_id)
        await bind_tenant(session, tenant_id)
        user = await users.create_user(session, settings, Principal(kind="operator"), tenant_id, email=email,
                                       name=name, role=role, password=password)
        return users.user_view(user)
