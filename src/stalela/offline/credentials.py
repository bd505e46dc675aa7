"""Issuing a delegated credential: a block of numbers and a compact JWS signed by the tenant's key.

The JWS is assembled here rather than by a JOSE library because the signature comes from our key
registry (an HSM through PKCS#11 in production), which signs bytes and never hands a key out; its
ES256 r||s output is exactly JWS's. Verification, where a library's strictness matters, is joserfc's
(``core.offline.verify_credential``)."""
from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from stalela.config import Settings
from stalela.db.base import utcnow
from stalela.errors import ValidationFailed
from stalela.fiscal.core import offline as core
from stalela.fiscal.invoices.blocks import allocate_block
from stalela.fiscal.jurisdictions import get_jurisdiction
from stalela.fiscal.signing import registry as keys
from stalela.kit.ids import new_id
from stalela.offline.device_repository import CredentialRepository
from stalela.offline.models import Device, DeviceCredential
from stalela.tenancy.repository import TenantRepository


def status_list_url(settings: Settings, tenant_id: str) -> str:
    return f"{settings.effective_public_url}/v1/status-lists/{tenant_id}"


def default_caps(jurisdiction: Any, settings: Settings) -> dict[str, Any]:
    return {"max_invoice_total": str(settings.offline_max_invoice_total),
            "invoice_types": sorted(jurisdiction.invoice_types - jurisdiction.credit_note_types),
            "tax_groups": sorted(jurisdiction.tax_groups)}


def check_caps(jurisdiction: Any, caps: dict[str, Any]) -> dict[str, Any]:
    """Credit notes are never sealed offline: their limit (what is left of the original) needs the cloud."""
    types = caps["invoice_types"]
    bad = [t for t in types if t not in jurisdiction.invoice_types or t in jurisdiction.credit_note_types]
    if bad or not types:
        raise ValidationFailed(f"invoice types {bad} cannot be sealed offline" if bad else "no invoice type allowed",
                               code="credential_caps_invalid", field="caps.invoice_types")
    groups = caps["tax_groups"]
    if not groups or any(g not in jurisdiction.tax_groups for g in groups):
        raise ValidationFailed("unknown tax group in caps", code="credential_caps_invalid", field="caps.tax_groups")
    total = Decimal(str(caps["max_invoice_total"]))
    if not total > 0:
        raise ValidationFailed("max_invoice_total must be positive", code="credential_caps_invalid",
                               field="caps.max_invoice_total")
    return {"max_invoice_total": str(total), "invoice_types": sorted(set(types)), "tax_groups": sorted(set(groups))}


async def issue(session: AsyncSession, settings: Settings, tenant_id: str, device: Device, *, block_size: int,
                lifetime: timedelta, invoice_type: str | None = None,
                caps: dict[str, Any] | None = None) -> DeviceCredential:
    """Allocate a block for ``device`` and sign its credential. Flushes, never commits."""
    if not timedelta(minutes=1) <= lifetime <= core.MAX_LIFETIME:
        raise ValidationFailed("a credential lives from 1 minute to 7 days", code="credential_lifetime_invalid",
                               field="lifetime_hours")
    tenant = await TenantRepository(session).get(tenant_id)
    jurisdiction = get_jurisdiction(tenant.jurisdiction)
    if jurisdiction.code != "CD":
        # Argentina's receipts are valid only with ARCA's CAE; its contingency regime (CAEA) is not built.
        raise ValidationFailed("offline sealing is available for DRC tenants only",
                               code="offline_not_supported", field="jurisdiction")
    caps = check_caps(jurisdiction, {**default_caps(jurisdiction, settings), **(caps or {})})
    invoice_type = invoice_type or caps["invoice_types"][0]
    if invoice_type not in caps["invoice_types"]:
        raise ValidationFailed("the block's invoice type must be allowed by the caps", code="credential_caps_invalid",
                               field="invoice_type")
    jti, now = new_id("dcr"), utcnow().replace(microsecond=0)
    expires = now + lifetime
    block, numbering = await allocate_block(
        session, settings, tenant_id, outlet_id=device.outlet_id, invoice_type=invoice_type, size=block_size,
        device_id=device.id, credential_jti=jti, device_key=device.thumbprint, expires_at=expires)
    repo = CredentialRepository(session)
    index = await repo.next_status_index()
    key = await keys.active_key(session, tenant_id)
    claims = {
        "iss": settings.effective_public_url, "sub": device.id, "jti": jti, "vct": core.CREDENTIAL_VCT,
        "iat": int(now.timestamp()), "nbf": int(now.timestamp()), "exp": int(expires.timestamp()),
        "tenant_id": tenant_id, "jurisdiction": numbering["jurisdiction"], "seller_tax_id": numbering["seller_tax_id"],
        "cnf": {"jwk": json.loads(device.public_jwk)},
        "outlet": device.outlet_id, "outlet_code": numbering["outlet_code"], "pos_number": numbering["pos_number"],
        "series": numbering["series_id"], "series_code": numbering["series_code"],
        "series_generation": numbering["series_generation"], "series_first": numbering["series_first"],
        "block": {"id": block.id, "first": block.first, "last": block.last, "anchor": block.anchor_hash},
        "caps": caps,
        "status": {"status_list": {"idx": index, "uri": status_list_url(settings, tenant_id)}},
    }
    header = {"alg": "ES256", "typ": core.CREDENTIAL_TYP, "kid": key.id}
    signing_input = core.credential_signing_input(header, claims)
    token = core.compact_jws(signing_input, await keys.sign(settings, key, signing_input))
    row = DeviceCredential(tenant_id=tenant_id, jti=jti, device_id=device.id, outlet_id=device.outlet_id,
                           series_id=numbering["series_id"], block_id=block.id, status_index=index, not_before=now,
                           expires_at=expires, token=token, caps=json.dumps(caps), created_at=now)
    session.add(row)
    await session.flush()
    return row
