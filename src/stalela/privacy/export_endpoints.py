"""Portability exports over HTTP: ``/v1/privacy/exports`` (the tenant's owner or admins) and the signed
download link (no credentials: its token is the credential)."""
from __future__ import annotations

import base64
from typing import Annotated, AsyncIterator

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from stalela.auth.dependencies import AppSettings, Can, DbSession, client_ip
from stalela.auth.permissions import Perm
from stalela.errors import NotFound
from stalela.kit.jsonbody import JSONRoute
from stalela.kit.openapi import answers, media
from stalela.kit.pagination import Page, PageParams, page_params
from stalela.kit.schemas import PathId
from stalela.privacy import export_service as service
from stalela.privacy.export_schemas import PrivacyExportCreate, PrivacyExportOut
from stalela.storage.factory import store_for

router = APIRouter(route_class=JSONRoute, prefix="/v1/privacy/exports", tags=["privacy"])
# What a tenant holds is exported for its owner and admins (and the tenant's root API key), never for
# a till's key, an accountant or a cashier.
Controller = Can(Perm.ADMIN)
Paging = Annotated[PageParams, Depends(page_params)]


@answers(503)
async def _download_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A write transaction (the download is audit-logged) for a GET that carries no credentials."""
    async with request.app.state.db.transaction() as session:
        yield session


DownloadSession = Annotated[AsyncSession, Depends(_download_session, scope="function")]


@router.post("", status_code=202, response_model=PrivacyExportOut, responses={
    202: {"description": "Accepted: the archive is being built; poll the export until it is ready"},
    409: {"description": "export_limit_reached: other exports of the tenant are still being built"},
    422: {"description": "subject_required, subject_not_allowed, export_scope_unavailable, or the schema"},
})
async def request_export(body: PrivacyExportCreate, request: Request, session: DbSession, principal: Controller,
                         settings: AppSettings):
    """Export everything the tenant has with us (``scope: tenant``) or what concerns one data subject
    (``scope: subject``) as a signed BagIt archive (docs/privacy-exports.md)."""
    export = await service.request_export(session, settings, principal, body, client_ip(request))
    return service.render(settings, export)


@router.get("", response_model=Page[PrivacyExportOut])
async def list_exports(session: DbSession, _: Controller, settings: AppSettings, paging: Paging):
    """The tenant's exports, newest first."""
    rows, more = await service.list_exports(session, limit=paging.limit, starting_after=paging.starting_after)
    return {"data": [service.render(settings, e) for e in rows], "has_more": more}


@router.get("/{privacy_export_id}", response_model=PrivacyExportOut)
async def get_export(privacy_export_id: PathId, session: DbSession, _: Controller, settings: AppSettings):
    """The export; once ready, with its signed ``download_url`` (valid until ``expires_at``)."""
    return service.render(settings, await service.get_export(session, privacy_export_id))


@router.delete("/{privacy_export_id}", response_model=PrivacyExportOut,
               responses={409: {"description": "export_not_revocable: the export already expired or failed"}})
async def revoke_export(privacy_export_id: PathId, request: Request, session: DbSession, principal: Controller,
                        settings: AppSettings):
    """Revoke the export: its link answers 410 from now on and its file is deleted. Idempotent."""
    export = await service.revoke_export(session, principal, privacy_export_id, client_ip(request))
    return service.render(settings, export)


@router.get("/{privacy_export_id}/download", response_class=StreamingResponse, responses={
    200: media("application/gzip", description="The archive (.tar.gz of a BagIt bag)"),
    403: {"description": "export_link_invalid: no token, or not a link of this export"},
    404: {"description": "export_not_found, export_file_missing"},
    409: {"description": "export_not_ready"},
    410: {"description": "export_link_expired, export_revoked"},
})
async def download_export(privacy_export_id: PathId, request: Request, session: DownloadSession,
                          settings: AppSettings,
                          token: Annotated[str | None, Query(max_length=2048, description="The link's token")] = None):
    """The archive, for whoever holds a live link (no bearer token: the link's token is the credential)."""
    export = await service.authorize_download(session, settings, privacy_export_id, token, client_ip(request))
    store = store_for(settings)
    if await store.stat(export.storage_key) is None:
        raise NotFound("the export's file is gone from the document store", code="export_file_missing")
    digest = base64.b64encode(bytes.fromhex(export.sha256)).decode()
    headers = {
        "Content-Length": str(export.size),
        "Content-Disposition": f'attachment; filename="stalela-export-{export.id}.tar.gz"',
        "X-Content-SHA256": export.sha256, "Repr-Digest": f"sha-256=:{digest}:",  # RFC 9530
        # The token is in the URL: keep it out of caches and of the Referer of anything opened next.
        "Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
    }
    return StreamingResponse(store.get(export.storage_key), media_type="application/gzip", headers=headers)
