"""The public revocation status lists (no authentication; docs/offline.md, "Revocation")."""
from __future__ import annotations

from fastapi import APIRouter, Response

from stalela.auth.dependencies import AppSettings, DbSession, PublicRateLimit
from stalela.kit.jsonbody import JSONRoute
from stalela.kit.schemas import PathId
from stalela.offline import status_list
from stalela.offline.device_schemas import StatusListOut
from stalela.tenancy.context import bind_platform, bind_tenant

router = APIRouter(route_class=JSONRoute, prefix="/v1/status-lists", tags=["offline"], dependencies=[PublicRateLimit])


async def _tenant_session(session, tenant_id: str):  # noqa: ANN001, ANN202
    # The URL names the tenant: look it up on the control plane, then read that tenant's rows alone
    # (its own database when it has one), as the verification page does.
    await bind_platform(session)
    await status_list.check_tenant(session, tenant_id)
    await bind_tenant(session, tenant_id)
    return session


def _cache(settings) -> dict[str, str]:  # noqa: ANN001
    return {"Cache-Control": f"public, max-age={settings.offline_status_list_max_age}"}


# Declared before the credential's route: ``{tenant_id}`` alone would also match "ten_x.json".
@router.get("/{tenant_id}.json", response_model=StatusListOut, responses={404: {"description": "tenant_not_found"}})
async def status_list_json(tenant_id: PathId, session: DbSession, settings: AppSettings, response: Response):
    """``{"tenant_id", "updated_at", "revoked": [{"jti", "status_index", "revoked_at", "reason"}]}``."""
    await _tenant_session(session, tenant_id)
    response.headers.update(_cache(settings))
    return await status_list.as_json(session, tenant_id)


@router.get("/{tenant_id}", response_class=Response, responses={
    200: {"description": "A Bitstring Status List credential as a compact JWS (typ vc+jwt)",
          "content": {status_list.MEDIA_TYPE: {"schema": {"type": "string"}}}},
    404: {"description": "tenant_not_found"}})
async def status_list_credential(tenant_id: PathId, session: DbSession, settings: AppSettings):
    """W3C Bitstring Status List v1.0 (``statusPurpose: revocation``), signed by the tenant's key."""
    await _tenant_session(session, tenant_id)
    token = await status_list.as_vc_jwt(session, settings, tenant_id)
    return Response(token, media_type=status_list.MEDIA_TYPE, headers=_cache(settings))
