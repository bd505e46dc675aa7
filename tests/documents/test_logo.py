"""The tenant's logo over HTTP: checked with Pillow, re-encoded without metadata, printed on invoices,
admin only, and never another tenant's."""
from __future__ import annotations

import io
import subprocess

import pytest
from PIL import Image, PngImagePlugin

from tests.documents.printing import needs_poppler
from tests.support.invoices import sample_invoice


def png(width: int = 120, height: int = 40, *, text: str | None = None, colour=(200, 30, 60)) -> bytes:
    info = PngImagePlugin.PngInfo()
    if text:
        info.add_text("Comment", text)
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def jpeg_with_exif() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 120, 10)).save(out, format="JPEG", exif=exif.tobytes())
    return out.getvalue()


async def put(client, headers, body: bytes, kind: str = "image/png"):
    return await client.put("/v1/tenant/logo", content=body, headers={**headers, "Content-Type": kind})


async def test_upload_read_replace_and_remove(client, new_tenant):
    _, headers = await new_tenant("Logo SARL", "L0000001")
    assert (await client.get("/v1/tenant/logo", headers=headers)).json()["code"] == "logo_not_found"
    r = await put(client, headers, png(text="made by someone's laptop"))
    assert r.status_code == 200, r.text
    meta = r.json()
    assert meta["content_type"] == "image/png" and (meta["width"], meta["height"]) == (120, 40)
    stored = await client.get("/v1/tenant/logo", headers=headers)
    assert stored.status_code == 200 and stored.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(stored.content)) as img:
        assert img.size == (120, 40) and "Comment" not in img.info  # re-encoded: the text chunk is gone
    # A JPEG is accepted, stored as PNG without its EXIF.
    r = await put(client, headers, jpeg_with_exif(), "image/jpeg")
    assert r.status_code == 200 and r.json()["content_type"] == "image/png"
    stored = (await client.get("/v1/tenant/logo", headers=headers)).content
    assert b"SecretCam" not in stored and stored.startswith(b"\x89PNG")
    # A large one is scaled down to 1024 pixels.
    assert (await put(client, headers, png(3000, 600))).json()["width"] == 1024
    assert (await client.delete("/v1/tenant/logo", headers=headers)).status_code == 204
    assert (await client.get("/v1/tenant/logo", headers=headers)).status_code == 404
    assert (await client.delete("/v1/tenant/logo", headers=headers)).json()["code"] == "logo_not_found"


@pytest.mark.parametrize("body,kind,status,code", [
    (b"GIF89a....", "image/gif", 415, "logo_media_type"),
    (b'{"logo": 1}', "application/json", 415, "logo_media_type"),
    (b"\x89PNG\r\n\x1a\nnot really a png", "image/png", 422, "logo_invalid"),
    (png(), "image/jpeg", 422, "logo_invalid"),  # a PNG sent as a JPEG is not decoded as one
    (png(5000, 10), "image/png", 422, "logo_dimensions"),
    (b"\x00" * (512 * 1024 + 1), "image/png", 413, "logo_too_large"),
])
async def test_bad_uploads_are_clear_problems(client, new_tenant, body, kind, status, code):
    _, headers = await new_tenant("Bad Logo SARL", "L0000002")
    r = await put(client, headers, body, kind)
    assert r.status_code == status and r.headers["content-type"] == "application/problem+json", r.text
    assert r.json()["code"] == code and r.json()["field"]
    assert (await client.get("/v1/tenant/logo", headers=headers)).status_code == 404


async def test_only_admins_change_it_and_tenants_never_see_each_others(client, new_tenant):
    _, victim = await new_tenant("Victim Logo SARL", "L0000003")
    _, attacker = await new_tenant("Attacker Logo SARL", "L0000004")
    assert (await put(client, victim, png(colour=(1, 2, 3)))).status_code == 200
    assert (await client.get("/v1/tenant/logo", headers=attacker)).status_code == 404
    assert (await client.delete("/v1/tenant/logo", headers=attacker)).status_code == 404
    assert (await client.get("/v1/tenant/logo", headers=victim)).status_code == 200  # still there
    reader = (await client.post("/v1/api-keys", json={"name": "reader", "scopes": ["invoices:read"]},
                                headers=victim)).json()
    reader_headers = {"Authorization": f"Bearer {reader['api_key']}"}
    assert (await client.get("/v1/tenant/logo", headers=reader_headers)).status_code == 200
    assert (await put(client, reader_headers, png())).status_code == 403
    assert (await client.delete("/v1/tenant/logo", headers=reader_headers)).status_code == 403


@needs_poppler
async def test_the_logo_is_printed_on_invoices(client, new_tenant, tmp_path):
    _, headers = await new_tenant("Printed Logo SARL", "L0000005")
    outlet = (await client.post("/v1/outlets", json={"code": "LOGO1", "name": "Shop"}, headers=headers)).json()
    inv = (await client.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers=headers)).json()

    async def images(layout: str) -> int:
        r = await client.get(f"/v1/invoices/{inv['id']}/pdf", params={"layout": layout}, headers=headers)
        (tmp_path / "doc.pdf").write_bytes(r.content)
        listing = subprocess.run(["pdfimages", "-list", str(tmp_path / "doc.pdf")], check=True, capture_output=True,
                                 text=True).stdout.splitlines()[2:]
        return len(listing)

    without = {layout: await images(layout) for layout in ("a4", "receipt")}
    assert (await put(client, headers, png(300, 100))).status_code == 200
    assert {layout: await images(layout) for layout in ("a4", "receipt")} == {k: v + 1 for k, v in without.items()}
