"""The merchant's branding page (/app/branding): the logo printed on invoices and receipts, uploaded or
removed by an admin. Over accounts.logos: the same checks and storage as ``PUT /v1/tenant/logo``."""
from __future__ import annotations

import email.parser
import email.policy

from fastapi import APIRouter, Request, Response

from stalela.accounts import logos
from stalela.auth.dependencies import DbSession
from stalela.auth.permissions import Perm
from stalela.dashboard.web import CurrentViewer, DashboardRoute, Form, check_csrf, need, posted, redirect, render
from stalela.errors import BadRequest, PayloadTooLarge

router = APIRouter(prefix="/app", route_class=DashboardRoute, include_in_schema=False)
# The form's own fields and the file, with room for the multipart framing.
_MAX_FORM_BYTES = logos.MAX_BYTES + 16 * 1024


@router.get("/branding")
async def branding_page(request: Request, session: DbSession, viewer: CurrentViewer):
    need(viewer, Perm.ADMIN)
    logo = await logos.current_logo(session)
    return render(request, "branding.html", logo=logo, saved=request.query_params.get("saved"),
                  removed=request.query_params.get("removed"), max_kb=logos.MAX_BYTES // 1024,
                  max_side=logos.MAX_SIDE)


@router.get("/branding/logo.png")
async def branding_logo(session: DbSession, viewer: CurrentViewer):
    need(viewer, Perm.ADMIN)
    logo = await logos.get_logo(session)
    return Response(logo.data, media_type=logo.content_type, headers={"Cache-Control": "private, no-cache"})


@router.post("/branding/logo")
async def upload_logo(request: Request, session: DbSession, viewer: CurrentViewer):
    need(viewer, Perm.ADMIN)
    form, data, content_type = await _multipart(request)
    check_csrf(request, form, viewer.csrf)
    await logos.set_logo(session, viewer.principal, data, content_type)
    return redirect("/app/branding?saved=1")


@router.post("/branding/logo/delete")
async def delete_logo(request: Request, session: DbSession, viewer: CurrentViewer):
    need(viewer, Perm.ADMIN)
    await posted(request, viewer)
    await logos.remove_logo(session, viewer.principal)
    return redirect("/app/branding?removed=1")


async def _multipart(request: Request) -> tuple[Form, bytes, str | None]:
    """The upload form (multipart/form-data): its text fields, and the file's bytes and declared type.

    Read with the standard library's MIME parser (the consoles' other forms are urlencoded and the
    service carries no multipart dependency for this one form)."""
    kind = request.headers.get("content-type", "")
    if not kind.lower().startswith("multipart/form-data"):
        raise BadRequest("expected a file upload (multipart/form-data)", code="form_expected")
    body = await request.body()
    if len(body) > _MAX_FORM_BYTES:
        raise PayloadTooLarge(f"a logo may be at most {logos.MAX_BYTES // 1024} KB", code="logo_too_large",
                              field="logo")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {kind}\r\n\r\n".encode("latin-1") + body)
    fields: list[tuple[str, str]] = []
    data, content_type = b"", None
    for part in message.iter_parts() if message.is_multipart() else ():
        name = part.get_param("name", header="content-disposition")
        if name == "logo":
            data, content_type = part.get_payload(decode=True) or b"", part.get_content_type()
        elif name:
            fields.append((name, (part.get_payload(decode=True) or b"").decode("utf-8", errors="replace")))
    if not data:
        raise BadRequest("choose an image file to upload", code="logo_missing", field="logo")
    return Form(fields), data, content_type
