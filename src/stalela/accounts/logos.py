"""The tenant's logo, printed on its invoices and receipts (docs/documents.md).

An upload is untrusted input: Pillow decodes it fully (a file that only claims to be a PNG fails),
its pixel size is bounded before decoding (a small file may declare a huge image: a decompression
bomb), and what is stored is a fresh PNG re-encoded from the pixels, so no metadata (EXIF location,
comments, colour profiles) and no trailing bytes survive. Not fiscal: a new logo replaces the old one.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from stalela.audit.service import record
from stalela.auth.principal import Principal
from stalela.errors import NotFound, PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from stalela.tenancy.models import TenantLogo
from stalela.tenancy.repository import TenantLogoRepository

MAX_BYTES = 512 * 1024
MAX_SIDE = 4096  # pixels, as declared by the file (checked before decoding)
STORED_SIDE = 1024  # larger logos are scaled down: a 60 mm wide print needs no more
MEDIA_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG"}


@dataclass(frozen=True)
class Logo:
    png: bytes
    width: int
    height: int
    sha256: str


def checked_logo(data: bytes, content_type: str | None) -> Logo:
    """The upload as a clean PNG, or the problem that refuses it."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media not in MEDIA_TYPES:
        raise UnsupportedMediaType("a logo is sent as image/png or image/jpeg", code="logo_media_type",
                                   field="content-type")
    if len(data) > MAX_BYTES:
        raise PayloadTooLarge(f"a logo may be at most {MAX_BYTES // 1024} KB", code="logo_too_large", field="body")
    from PIL import Image, UnidentifiedImageError  # heavy (see kit.pdf): loaded by the first upload

    try:
        with Image.open(io.BytesIO(data), formats=[MEDIA_TYPES[media]]) as img:
            width, height = img.size
            if width > MAX_SIDE or height > MAX_SIDE or width < 1 or height < 1:
                raise ValidationFailed(f"a logo may be at most {MAX_SIDE} × {MAX_SIDE} pixels",
                                       code="logo_dimensions", field="body")
            img.load()
            picture = img.convert("RGBA" if img.mode in ("RGBA", "LA", "P", "PA") else "RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ValidationFailed(f"the body is not a valid {media} image", code="logo_invalid", field="body") from exc
    picture.thumbnail((STORED_SIDE, STORED_SIDE))
    out = io.BytesIO()
    picture.save(out, format="PNG", optimize=True)  # a new file: no metadata chunks are copied
    png = out.getvalue()
    return Logo(png, picture.width, picture.height, hashlib.sha256(png).hexdigest())


async def set_logo(session: AsyncSession, principal: Principal, data: bytes, content_type: str | None) -> TenantLogo:
    logo = checked_logo(data, content_type)
    row = await TenantLogoRepository(session).save(TenantLogo(
        tenant_id=principal.tenant_id, content_type="image/png", data=logo.png, sha256=logo.sha256,
        width=logo.width, height=logo.height))
    await record(session, principal.tenant_id, principal.actor, "tenant.logo_set", principal.tenant_id,
                 {"sha256": logo.sha256, "width": logo.width, "height": logo.height})
    return row


async def current_logo(session: AsyncSession) -> TenantLogo | None:
    return await TenantLogoRepository(session).current()


async def get_logo(session: AsyncSession) -> TenantLogo:
    row = await current_logo(session)
    if row is None:
        raise NotFound("this tenant has no logo", code="logo_not_found")
    return row


async def remove_logo(session: AsyncSession, principal: Principal) -> None:
    if not await TenantLogoRepository(session).remove():
        raise NotFound("this tenant has no logo", code="logo_not_found")
    await record(session, principal.tenant_id, principal.actor, "tenant.logo_removed", principal.tenant_id)
