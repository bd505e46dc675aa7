"""The tenant's logo: upload (raw PNG or JPEG body), read, remove. Printed on invoices and receipts."""
from __future__ import annotations

from fastapi import APIRouter, Request, Response

from stalela.accounts import logos
from stalela.auth.dependencies import Can, DbSession
from stalela.auth.permissions import Perm
from stalela.kit.jsonbody import JSONRoute
from stalela.kit.openapi import media

router = APIRouter(route_class=JSONRoute, prefix="/v1/tenant", tags=["tenant"])
_BODY = {"content": {t: {"schema": {"type": "string", "format": "binary"}} for t in logos.MEDIA_TYPES}, "required": True}


def _meta(row) -> dict:  # noqa: ANN001
    return {"object": "logo", "content_type": row.content_type, "width": row.width, "height": row.height,
            "sha256": row.sha256, "bytes": len(row.data)}


@router.put("/logo", openapi_extra={"requestBody": _BODY}, responses={
    200: {"description": "The stored logo (re-encoded as PNG, metadata stripped)"},
    400: {"description": "The request could not be read"},
    413: {"description": "logo_too_large"}, 415: {"description": "logo_media_type"},
    422: {"description": "logo_invalid, logo_dimensions"}})
async def put_logo(request: Request, session: DbSession, principal: Can(Perm.ADMIN)):
    """Upload the logo printed on the tenant's invoices and receipts: a PNG or JPEG of at most 512 KB and
    4096 × 4096 pixels. It is decoded, scaled down to 1024 pixels at most and stored as a new PNG."""
    row = await logos.set_logo(session, principal, await request.body(), request.headers.get("content-type"))
    return _meta(row)


@router.get("/logo", response_class=Response, responses={
    200: media("image/png", description="The logo"), 404: {"description": "logo_not_found"}})
async def get_logo(session: DbSession, principal: Can(Perm.OUTLETS_READ)):
    """The tenant's logo as stored (PNG)."""
    row = await logos.get_logo(session)
    return Response(row.data, media_type=row.content_type, headers={"Cache-Control": "private, max-age=60",
                                                                    "ETag": f'"{row.sha256}"'})


@router.delete("/logo", status_code=204, response_class=Response, responses={404: {"description": "logo_not_found"}})
async def delete_logo(session: DbSession, principal: Can(Perm.ADMIN)):
    """Remove the logo: documents print without one."""
    await logos.remove_logo(session, principal)
    return Response(status_code=204)
