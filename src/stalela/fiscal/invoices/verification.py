"""Public verification of a sealed invoice: what the QR code on a receipt opens."""
from __future__ import annotations

import re

import io
import json
from pathlib import Path
from typing import Any

import segno
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.ext.asyncio import AsyncSession

from stalela.kit.schemas import ID_PATTERN
from stalela.errors import NotFound
from stalela.fiscal.core.seal import verify_seal
from stalela.fiscal.invoices.models import Invoice
from stalela.fiscal.invoices.repository import InvoiceRepository, SyncStateRepository
from stalela.config import Settings
from stalela.fiscal.invoices.buyers import reveal_buyers
from stalela.fiscal.invoices.service import stored_seal, sync_view
from stalela.fiscal.signing.repository import SigningKeyRepository
from stalela.tenancy.repository import OutletRepository, TenantRepository

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape(["html"])
)


async def find(session: AsyncSession, invoice_id: str) -> Invoice:
    """The sealed invoice a public URL names, in the database its session reads (the tenant's, when the
    URL names the tenant: ``auth.dependencies.VerificationSession``)."""
    invoice = await InvoiceRepository(session).get(invoice_id) if re.fullmatch(ID_PATTERN, invoice_id) else None
    if invoice is None:
        raise NotFound("no such invoice", code="invoice_not_found")
    return invoice


async def verify(session: AsyncSession, invoice_id: str, settings: Settings | None = None) -> dict[str, Any]:
    """Check the stored seal against the registry's public key, as an outside verifier would.

    With ``settings``, the buyer's name is shown while its subject is active (never once an erasure
    was asked), checked against the signed commitment."""
    invoice = await find(session, invoice_id)
    key = await SigningKeyRepository(session).get(invoice.key_id)
    tenant = await TenantRepository(session).get(invoice.tenant_id)
    outlet = await OutletRepository(session).get_in_tenant(invoice.tenant_id, invoice.outlet_id)
    seal = stored_seal(invoice)
    if key is None:
        authentic, reason = False, "signing key unknown"
    else:
        check = verify_seal(seal, json.loads(key.public_jwk))
        authentic, reason = check.valid, check.reason
    payload = seal["payload"]
    authority = await _authority(session, invoice.id)
    return {
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
        "buyer": await _buyer(session, settings, invoice) if settings is not None else None,
    }


async def _buyer(session: AsyncSession, settings: Settings, invoice: Any) -> dict[str, Any] | None:
    shown = (await reveal_buyers(session, settings, invoice.tenant_id, [invoice], purpose="public")).get(invoice.id)
    if not shown or shown.get("buyer") is None:
        return None
    return {"name": shown["buyer"].get("name"), "committed": True}  # reveal refuses what does not match


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


# The page speaks the jurisdiction's language beside English (every language the product ships
# arrives with issue 23's catalogue).
LABELS = {
    "CD": {"lang": "fr", "ok": "Facture authentique", "bad": "Facture NON authentique", "seller": "Vendeur",
           "tax_id": "NIF", "outlet": "Point de vente", "number": "Numéro fiscal", "authority": "DGI",
           "hash": "Empreinte", "key": "Clé", "buyer": "Acheteur"},
    "AR": {"lang": "es", "ok": "Comprobante auténtico", "bad": "Comprobante NO auténtico", "seller": "Emisor",
           "tax_id": "CUIT", "outlet": "Punto de venta", "number": "Número", "authority": "ARCA",
           "hash": "Huella", "key": "Clave", "buyer": "Receptor"},
}


def render_page(result: dict[str, Any]) -> str:
    labels = LABELS.get(result.get("jurisdiction"), LABELS["CD"])
    ar = result.get("ar") or {}
    arca_qr = arca_qr_image(ar["arca_qr_url"]) if ar.get("arca_qr_url") else None
    return _templates.get_template("verify.html").render(r=result, L=labels, arca_qr=arca_qr)


def qr_svg(text: str) -> bytes:
    out = io.BytesIO()
    segno.make(text, error="m").save(out, kind="svg", scale=4, border=2)
    return out.getvalue()
