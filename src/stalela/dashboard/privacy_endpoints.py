"""The privacy pages of both consoles: the tenant owner's data subjects' requests (/app/privacy) and the
operator's view of every tenant's open requests and offboardings (/ops/privacy). Over the privacy
domain's services: filing here is the same use case as the API's."""
from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import ValidationError

from stalela.auth.dependencies import DbSession
from stalela.auth.permissions import Perm
from stalela.dashboard import admin_filters  # noqa: F401 (the pages' ``at`` filter)
from stalela.dashboard.web import CurrentOperator, CurrentViewer, DashboardRoute, need, posted, redirect, render
from stalela.errors import ValidationFailed
from stalela.privacy import erasure_schemas
from stalela.privacy import export_service as exports
from stalela.privacy.export_schemas import PrivacyExportCreate
from stalela.privacy import erasure_service as erasure
from stalela.privacy import offboarding_service as offboarding

app_router = APIRouter(prefix="/app", route_class=DashboardRoute, include_in_schema=False)
ops_router = APIRouter(prefix="/ops", route_class=DashboardRoute, include_in_schema=False)


@app_router.get("/privacy")
async def privacy_page(request: Request, session: DbSession, viewer: CurrentViewer):
    need(viewer, Perm.PRIVACY)
    rows, more = await erasure.list_requests(session, limit=100, starting_after=None)
    settings = request.app.state.settings
    shown, _ = await exports.list_exports(session, limit=20, starting_after=None) if Perm.ADMIN in viewer.perms \
        else ([], False)
    return render(request, "privacy.html", requests=[erasure.render(r) for r in rows], more=more,
                  filed=request.query_params.get("filed"), exported=request.query_params.get("exported"),
                  exports=[exports.render(settings, e) for e in shown])


@app_router.post("/privacy/exports")
async def request_export(request: Request, session: DbSession, viewer: CurrentViewer):
    need(viewer, Perm.ADMIN)
    form = await posted(request, viewer)
    body = PrivacyExportCreate(scope="tenant", pdfs=form.text("pdfs") == "on")
    export = await exports.request_export(session, request.app.state.settings, viewer.principal, body)
    return redirect(f"/app/privacy?exported={export.id}")


@app_router.post("/privacy/erasure-requests")
async def file_erasure(request: Request, session: DbSession, viewer: CurrentViewer):
    need(viewer, Perm.PRIVACY)
    form = await posted(request, viewer)
    try:
        subject = erasure_schemas.Subject(email=form.text("email"), tax_id=form.text("tax_id"),
                                          reference=form.text("reference"))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "form"
        raise ValidationFailed(f"{where}: {first.get('msg', 'invalid')}", code="invalid_form", field=where) from None
    filed = await erasure.file_request(session, request.app.state.settings, viewer.principal, subject.model_dump())
    return redirect(f"/app/privacy?filed={filed.id}")


@ops_router.get("/privacy")
async def ops_privacy_page(request: Request, session: DbSession, operator: CurrentOperator):
    return render(request, "ops_privacy.html", requests=await erasure.open_requests(session),
                  offboardings=await offboarding.all_offboardings(session))
