"""Public verification of a sealed invoice: what the QR code on a receipt opens.

The page speaks the visitor's language (``?lang=``, else the browser's, else the issuing tenant's),
shows times in the outlet's zone and codes by name; whatever it cannot find (an unknown, malformed or
forged id, a wrong tenant or seal hash) is a translated HTML page, never problem+json, unless the
client asked for JSON (``PublicPageRoute``).
"""
from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import segno
from fastapi import Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from stalela.config import Settings
from stalela.errors import NotFound, StalelaError
from stalela.fiscal.core.seal import verify_seal
from stalela.fiscal.invoices.buyers import reveal_buyers
from stalela.fiscal.invoices.models import Invoice
from stalela.fiscal.invoices.repository import InvoiceRepository, SyncStateRepository
from stalela.fiscal.invoices.service import stored_seal, sync_view
from stalela.fiscal.jurisdictions import REGISTRY
from stalela.fiscal.jurisdictions import labels
from stalela.fiscal.signing.repository import SigningKeyRepository
from stalela.i18n import LANGUAGES, N_, SOURCE, from_accept_language, normalize, tenant_language
from stalela.i18n.jinja import LocalizedTemplates
from stalela.kit.jsonbody import JSONRoute
from stalela.kit.schemas import ID_PATTERN
from stalela.tenancy.repository import OutletRepository, TenantRepository

TEMPLATES_DIR = Path(__file__).parent / "templates"
# Where an authority stands with the invoice, in words (sync statuses of ``service.sync_view``).
AUTHORITY_STATUS = {
    "pending": N_("Not yet confirmed by the tax authority"),
    "acknowledged": N_("Confirmed by the tax authority"),
    "failed": N_("Not confirmed by the tax authority"),
    "rejected": N_("Refused by the tax authority"),
}
# The page itself is plain HTML and CSS: no script, nothing from elsewhere but ARCA's inline QR image;
# the URL (ids, tenant, seal hash) is not sent on as a referrer when the visitor follows a link.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; "
                               "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def templates(*directories: Path) -> LocalizedTemplates:
    """The public pages' templates in every language; ``public.html`` (the frame) lives here, so a
    domain above (reports) adds its own directory in front of this one."""
    return LocalizedTemplates([*directories, TEMPLATES_DIR],  # a search path
                              globals={"AUTHORITY_STATUS": AUTHORITY_STATUS, "labels": labels})


TEMPLATES = templates()
# Documented for the OpenAPI document; read by ``page_language`` (any other value is ignored, not refused:
# a visitor's typo must not turn an authentic invoice into an error page).
PageLanguage = Annotated[str | None, Query(description="The page's language: fr, es or en (default: the "
                                           "browser's Accept-Language, else the issuer's language)")]


# --------------------------------------------------------------------------------- the visitor


def page_language(request: Request, tenant_default: str | None = None) -> str:
    """``?lang=``, else the browser's (the visitor decides, not the merchant), else the issuing
    tenant's default, else English."""
    return (normalize(request.query_params.get("lang"))
            or from_accept_language(request.headers.get("accept-language")) or tenant_default or SOURCE)


def wants_json(request: Request) -> bool:
    """The API variant of a public page (``Accept: application/json``, or problem+json)."""
    accept = request.headers.get("accept", "")
    return "application/json" in accept or "application/problem+json" in accept


def language_links(request: Request) -> list[tuple[str, str]]:
    """(language, URL of this page in it), the query kept: the language switch."""
    links = []
    for lang in LANGUAGES:
        url = request.url.include_query_params(lang=lang)
        links.append((lang, f"{url.path}?{url.query}"))  # relative: whatever host the visitor reached
    return links


VARY = {"Vary": "Accept, Accept-Language"}  # one URL, a page per language or JSON: caches must tell them apart


def json_answer(data: dict[str, Any]) -> JSONResponse:
    return JSONResponse(data, headers=VARY)


def render(request: Request, name: str, *, pages: LocalizedTemplates = TEMPLATES, tenant_default: str | None = None,
           status: int = 200, **context: Any) -> HTMLResponse:
    """A public page in the visitor's language, with its language switch and its security headers."""
    lang = page_language(request, tenant_default)
    html = pages.render(lang, name, links=language_links(request), **context)
    return HTMLResponse(html, status_code=status, headers={**SECURITY_HEADERS, **VARY, "Content-Language": lang})


class PublicPageRoute(JSONRoute):
    """A route of the public pages a QR code opens. When such a page cannot be found (an unknown,
    malformed or forged id, a tenant or seal hash that does not match: a 404, or a 422 of a parameter's
    pattern) the visitor gets the translated "not known to Stalela" page with status 404, not JSON;
    a client that asks for JSON keeps the problem+json answer, and non-HTML routes (the QR image)
    are left as they are."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.response_class is not HTMLResponse:  # type: ignore[comparison-overlap]
            return handler
        # The Z report's page is the only other one: its route is /verify/z/{id}.
        document = "z_report" if self.path.startswith("/verify/z/") else "invoice"

        async def page(request: Request) -> Response:
            try:
                return await handler(request)
            except (StalelaError, RequestValidationError) as exc:
                status = getattr(exc, "status", 422)
                if wants_json(request) or status not in (400, 404, 422):
                    raise
                return render(request, "verify_unknown.html", status=404, document=document)

        return page


# --------------------------------------------------------------------------------- the invoice


async def find(session: AsyncSession, invoice_id: str) -> Invoice:
    """The sealed invoice a public URL names, in the database its session reads (the tenant's, when the
    URL names the tenant: ``auth.dependencies.VerificationSession``)."""
    invoice = await InvoiceRepository(session).get(invoice_id) if re.fullmatch(ID_PATTERN, invoice_id) else None
    if invoice is None:
        raise NotFound("no such invoice", code="invoice_not_found")
    return invoice


@dataclass
class Verified:
    """What a verification found: ``data`` is the JSON answer; the rest is for the page only."""
    data: dict[str, Any]
    language: str  # the issuing tenant's default language
    timezone: str | None  # the outlet's
    details: dict[str, Any] = field(default_factory=dict)


# An offline invoice is signed by a device key, which a cloud-signed delegated credential binds
# (docs/offline.md). Finding and checking that credential is the offline package's, above fiscal: it
# registers the look-up here when imported (``stalela.offline.batch_service``); fiscal never imports it.
# ``(session, tenant_id, credential jti) -> the device's public JWK, or None``.
DeviceKeyLookup = Callable[[AsyncSession, str, str], Coroutine[Any, Any, "dict[str, Any] | None"]]
device_keys: DeviceKeyLookup | None = None


async def _signer_jwk(session: AsyncSession, invoice: Invoice, payload: dict[str, Any]) -> dict[str, Any] | None:
    offline = payload.get("offline")
    if isinstance(offline, dict):
        return await device_keys(session, invoice.tenant_id, str(offline.get("credential"))) if device_keys else None
    key = await SigningKeyRepository(session).get(invoice.key_id)
    return json.loads(key.public_jwk) if key is not None else None


async def check(session: AsyncSession, invoice_id: str, settings: Settings | None = None) -> Verified:
    """Check the stored seal against the registry's public key, as an outside verifier would.

    With ``settings``, the buyer's name is shown while its subject is active (never once an erasure
    was asked), checked against the signed commitment."""
    invoice = await find(session, invoice_id)
    tenant = await TenantRepository(session).get(invoice.tenant_id)
    outlet = await OutletRepository(session).get_in_tenant(invoice.tenant_id, invoice.outlet_id)
    seal = stored_seal(invoice)
    jwk = await _signer_jwk(session, invoice, seal["payload"])
    if jwk is None:
        authentic, reason = False, "signing key unknown"
    else:
        result = verify_seal(seal, jwk)
        authentic, reason = result.valid, result.reason
    payload = seal["payload"]
    authority = await _authority(session, invoice.id)
    buyer = await _buyer(session, settings, invoice) if settings is not None else None
    data = {
        "jurisdiction": payload.get("jurisdiction", tenant.jurisdiction),
        "ar": _ar_view(payload.get("ar"), authority),
        "authentic": authentic,
        "reason": reason,
        "invoice_id": invoice.id,
        "fiscal_number": invoice.fiscal_number,
        "type": invoice.type,
        "issued_at": payload["issued_at"],
        "total": payload["total"],
        "currency": payload["currency"],
        "seller": {"name": tenant.name, "tax_id": tenant.tax_id},
        "outlet": {"code": outlet.code, "name": outlet.name} if outlet else None,
        "seal_hash": invoice.seal_hash,
        "key_id": invoice.key_id,
        "authority": {"status": authority["status"], "authority_code": authority["authority_code"]},
        "buyer": {"name": buyer["name"], "committed": True} if buyer else None,
    }
    return Verified(data, tenant_language(tenant.locale, tenant.jurisdiction), outlet.timezone if outlet else None,
                    _details(data["jurisdiction"], payload, json.loads(invoice.document), buyer))


def _details(jurisdiction: str, payload: dict[str, Any], document: dict[str, Any],
             buyer: dict[str, Any] | None) -> dict[str, Any]:
    """What the page shows beyond the JSON answer: the lines and groups as sealed, signed for display
    (a credit note's amounts are negative: it takes back a sale), its original and nature."""
    rules = REGISTRY.get(jurisdiction)
    credit = rules is not None and payload["type"] in rules.credit_note_types
    sign = Decimal(-1) if credit else Decimal(1)
    totals = payload.get("totals") or {}
    return {
        "credit": credit,
        "sign": sign,
        "total": sign * Decimal(payload["total"]),
        "original": payload.get("original"),
        "nature": payload.get("nature"),
        "buyer_type": (buyer or {}).get("type"),
        "groups": [{**g, "amount": sign * Decimal(g["amount"]), "vat": sign * Decimal(g.get("vat") or 0)}
                   for g in totals.get("groups", [])],
        "lines": [{**ln, "group": labels.line_group(ln), "amount": sign * Decimal(ln["amount"])}
                  for ln in document.get("lines", []) if ln.get("amount") is not None],
    }


async def _buyer(session: AsyncSession, settings: Settings, invoice: Any) -> dict[str, Any] | None:
    shown = (await reveal_buyers(session, settings, invoice.tenant_id, [invoice], purpose="public")).get(invoice.id)
    if not shown or shown.get("buyer") is None:
        return None
    return {"name": shown["buyer"].get("name"), "type": shown["buyer"].get("type")}  # reveal refuses what does not match


async def _authority(session: AsyncSession, invoice_id: str) -> dict[str, Any]:
    sync, ack = (await SyncStateRepository(session).views([invoice_id])).get(invoice_id, (None, None))
    return sync_view(sync, ack)


def _ar_view(ar: dict[str, Any] | None, authority: dict[str, Any]) -> dict[str, Any] | None:
    """An Argentine receipt's ARCA identity and, once authorised, its CAE and ARCA's own QR."""
    if ar is None:
        return None
    return {"point_of_sale": ar["point_of_sale"], "number": ar["number"], "cbte_tipo": ar["cbte_tipo"],
            "date": ar["date"], "cae": authority["authority_code"], "cae_due": authority.get("cae_due"),
            "arca_qr_url": authority.get("arca_qr_url")}


def arca_qr_image(url: str) -> str:
    """ARCA's QR as an inline SVG data URI: the page shows the code a consumer scans with ARCA's app."""
    return segno.make(url, error="m").svg_data_uri(scale=3, border=2)


def render_page(request: Request, verified: Verified) -> HTMLResponse:
    ar = verified.data.get("ar") or {}
    arca_qr = arca_qr_image(ar["arca_qr_url"]) if ar.get("arca_qr_url") else None
    return render(request, "verify.html", tenant_default=verified.language, r=verified.data, d=verified.details,
                  tz=verified.timezone, arca_qr=arca_qr)


def qr_svg(text: str) -> bytes:
    out = io.BytesIO()
    segno.make(text, error="m").save(out, kind="svg", scale=4, border=2)
    return out.getvalue()
