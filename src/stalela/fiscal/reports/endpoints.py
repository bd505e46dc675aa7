from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import Field
from jinja2 import Environment, FileSystemLoader, select_autoescape

from stalela.auth.dependencies import AppSettings, Can, DbSession, PublicRateLimit, VerificationSession
from stalela.auth.permissions import Perm
from stalela.db.session import Database
from stalela.fiscal.reports import a_report, formats, jobs, service
from stalela.fiscal.invoices.service import checked_language
from stalela.fiscal.reports.schemas import Format, ZClose
from stalela.kit.openapi import media
from stalela.kit.pagination import PageParams, page_params
from stalela.kit.schemas import CalendarDate, PathId, QueryId, StrictModel
from stalela.tenancy.context import bind_tenant
from stalela.kit.jsonbody import JSONRoute

router = APIRouter(route_class=JSONRoute, prefix="/v1", tags=["reports"])
# A report answers in the format asked for (?format=): JSON, or a file.
FILES = {200: media(*(t.split(";")[0] for f, t in formats.MEDIA_TYPES.items() if f != "json"), json=True,
                    description="The report in the asked format")}
public_router = APIRouter(route_class=JSONRoute, tags=["verification"], dependencies=[PublicRateLimit])
# The audit export: tagged with the ledger it exports, as well as "exports" (each route).
exports_router = APIRouter(route_class=JSONRoute, prefix="/v1", tags=["ledger"])
_templates = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                         autoescape=select_autoescape(["html"]))


# The language of a PDF (docs/documents.md): default the tenant's.
Lang = Annotated[str | None, Query(max_length=20, description="PDF language: fr, es or en; default: the tenant's")]


async def _as(session, report: dict[str, Any], fmt: str, status: int = 200,  # noqa: ANN001
              lang: str | None = None) -> Response:
    """The report in the asked format; files get a download name."""
    if fmt == "json":
        return JSONResponse(report, status_code=status)
    name = report.get("number") or f"X-{report['outlet_code']}-{report['business_day']}"
    if fmt == "csv":
        content = formats.report_csv(report)
    else:
        context = await service.report_context(session, report["tenant_id"], report["outlet_id"])
        content = formats.report_pdf(report, context, lang) if fmt == "pdf" else formats.report_xlsx(report, context)
    return Response(content, status_code=status, media_type=formats.MEDIA_TYPES[fmt],
                    headers={"Content-Disposition": f'attachment; filename="{name}.{fmt}"'})


@router.post("/outlets/{outlet_id}/z-reports", status_code=201, responses={
    200: {"description": "The day was already closed: its Z report (closing is idempotent)",
          "content": {"application/json": {"schema": {}}}},
    201: {"description": "The day is now closed: the sealed Z report"},
    409: {"description": "earlier_day_open, business_day_passed"},
    422: {"description": "business_day_in_future"},
})
async def close_day(outlet_id: PathId, session: DbSession, principal: Can(Perm.REPORTS_WRITE), settings: AppSettings,
                    body: ZClose | None = None):
    """Close the outlet's business day (default today, in its timezone) with a sealed Z report."""
    result = await service.close_day(session, settings, principal, outlet_id, body.business_day if body else None)
    return JSONResponse(service.render_z(settings, result.z), status_code=201 if result.created else 200)


@router.get("/outlets/{outlet_id}/x-report", responses={**FILES, 409: {"description": "business_day_closed"}})
async def x_report(outlet_id: PathId, session: DbSession, principal: Can(Perm.REPORTS_READ), settings: AppSettings,
                   business_day: CalendarDate | None = None, format: Format = "json", lang: Lang = None):
    """The open business day so far: the figures a Z would carry, signed, but not numbered nor stored."""
    lang = checked_language(lang)
    report = await service.x_report(session, settings, principal, outlet_id, business_day)
    return await _as(session, report, format, lang=lang)


@router.get("/z-reports")
async def list_z_reports(
    session: DbSession,
    principal: Can(Perm.REPORTS_READ),
    settings: AppSettings,
    paging: Annotated[PageParams, Depends(page_params)],
    outlet_id: QueryId = None,
    business_day_gte: CalendarDate | None = None,
    business_day_lt: CalendarDate | None = None,
):
    """Z reports, newest first."""
    rows, more = await service.list_z(session, principal, outlet_id=outlet_id, day_gte=business_day_gte,
                                      day_lt=business_day_lt, limit=paging.limit,
                                      starting_after=paging.starting_after)
    return {"data": [service.render_z(settings, z) for z in rows], "has_more": more}


@router.get("/z-reports/{z_report_id}", responses=FILES)
async def get_z_report(z_report_id: PathId, session: DbSession, principal: Can(Perm.REPORTS_READ),
                       settings: AppSettings, format: Format = "json", lang: Lang = None):
    """One Z report: JSON (with its seal), or a printable PDF, CSV or XLSX."""
    lang = checked_language(lang)
    z = await service.get_z(session, principal, z_report_id)
    return await _as(session, service.render_z(settings, z), format, lang=lang)


async def _stream(db: Database, report: a_report.AReport, fmt: str):  # noqa: ANN202
    # The request's transaction ends when the endpoint returns; the stream reads in its own.
    async with db.transaction(readonly=True) as session:
        await bind_tenant(session, report.tenant.id)
        if fmt in ("json", "csv"):
            buffer = a_report.Chunks()
            async for _ in a_report.run(session, report, a_report.make_writer(fmt, buffer)):
                if chunk := buffer.take():
                    yield chunk
            return
        with tempfile.TemporaryDirectory(prefix="stalela-a-report-") as tmp:
            path = str(Path(tmp) / f"a-report.{fmt}")
            await a_report.write_file(session, report, fmt, path)
            for block in a_report.chunks(path):
                yield block


@router.get("/a-reports", responses={**FILES, 404: {"description": "outlet_not_found"}})
async def get_a_report(
    request: Request,
    session: DbSession,
    principal: Can(Perm.REPORTS_READ),
    settings: AppSettings,
    day_from: Annotated[CalendarDate, Query(alias="from", description="First business day, inclusive")],
    day_to: Annotated[CalendarDate, Query(alias="to", description="Last business day, inclusive")],
    outlet_id: QueryId = None,
    format: Format = "json",
    lang: Lang = None,
):
    """Every invoice and line over business days, with totals per day and tax group; streamed."""
    lang = checked_language(lang)
    report = await a_report.prepare(session, settings, principal, outlet_id=outlet_id, day_from=day_from,
                                    day_to=day_to, fmt=format)
    report.lang = lang
    scope = report.outlets[report.outlet_id].code if report.outlet_id else "all"
    name = f"a-report-{scope}-{day_from}-{day_to}.{format}"
    return StreamingResponse(_stream(request.app.state.db, report, format), media_type=formats.MEDIA_TYPES[format],
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})


@public_router.get("/verify/z/{z_report_id}", response_class=HTMLResponse,
                   responses={200: media("text/html", json=True, description="The page, or JSON if asked for")})
async def verify_z_page(z_report_id: PathId, request: Request, session: VerificationSession,
                        h: Annotated[str, Query(pattern=r"^[0-9a-f]{64}$", description="The Z's seal hash")]):
    """The page a Z report's QR code opens. The seal hash in the URL is required: an id alone shows nothing."""
    result = await service.verify_z(session, z_report_id, h)
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse(result)
    return HTMLResponse(_templates.get_template("verify_z.html").render(r=result))


routers = [router, public_router]


class ExportRequest(StrictModel):
    from_: CalendarDate | None = Field(None, alias="from", description="First day (UTC), inclusive")
    to: CalendarDate | None = Field(None, description="Last day (UTC), exclusive")


@exports_router.post("/exports/audit", status_code=202, tags=["exports"])
async def request_audit_export(body: ExportRequest, session: DbSession, principal: Can(Perm.EXPORTS)):
    """Start building a signed audit export (.tar.gz); poll the job, then download it."""
    return jobs.render_job(await jobs.request_export(session, principal.tenant_id, body.from_, body.to,
                                                     principal.actor))


@exports_router.get("/exports/{export_id}", tags=["exports"])
async def get_export(export_id: PathId, session: DbSession, principal: Can(Perm.EXPORTS)):
    return jobs.render_job(await jobs.get_export(session, export_id))


@exports_router.get("/exports/{export_id}/download", tags=["exports"], response_class=FileResponse,
            responses={200: media("application/gzip", description="The signed audit export (.tar.gz)"),
                       409: {"description": "export_not_ready"}})
async def download_export(export_id: PathId, session: DbSession, principal: Can(Perm.EXPORTS), settings: AppSettings):
    """The export file once ready (409 export_not_ready before)."""
    job = await jobs.get_export(session, export_id)
    path = jobs.ready_file(settings, job)
    headers = {"X-Content-SHA256": job.sha256} if job.sha256 else {}
    return FileResponse(path, media_type="application/gzip", filename=f"stalela-audit-{job.id}.tar.gz",
                        headers=headers)
