"""The merchant console's settings: each user's language, and the organisation's default language.

The same choices as the API (``PATCH /v1/users/me``) through the same service, so the rule (a shipped
language, or none for the default) lives in one place.
"""
from __future__ import annotations

from fastapi import APIRouter, Request

from stalela.auth import users
from stalela.auth.dependencies import DbSession
from stalela.auth.permissions import Perm
from stalela.dashboard import service
from stalela.dashboard.web import CurrentViewer, DashboardRoute, need, posted, redirect, render
from stalela.i18n import JURISDICTION_LANGUAGES, SOURCE, tenant_language

router = APIRouter(prefix="/app", route_class=DashboardRoute, include_in_schema=False)


def _chosen(value: str | None) -> str | None:
    """The form's value: "" is "the default"; anything else is checked by the service."""
    return (value or "").strip() or None


@router.get("/settings")
async def settings_page(request: Request, viewer: CurrentViewer):
    return render(request, "settings.html",
                  jurisdiction_language=JURISDICTION_LANGUAGES.get(viewer.jurisdiction, SOURCE),
                  org_language=tenant_language(viewer.tenant_locale, viewer.jurisdiction))


@router.post("/settings/language")
async def set_my_language(request: Request, session: DbSession, viewer: CurrentViewer):
    form = await posted(request, viewer)
    await users.set_locale(session, viewer.principal, _chosen(form.get("locale")))
    return redirect("/app/settings?saved=1")


@router.post("/settings/organisation")
async def set_organisation_language(request: Request, session: DbSession, viewer: CurrentViewer):
    need(viewer, Perm.ADMIN)
    form = await posted(request, viewer)
    await service.set_tenant_locale(session, viewer.principal, _chosen(form.get("locale")))
    return redirect("/app/settings?saved=1")
