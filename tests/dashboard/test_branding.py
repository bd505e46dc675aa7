"""The branding page (/app/branding): an admin uploads and removes the logo printed on documents; the form
needs the CSRF token; a cashier neither sees nor changes it."""
from __future__ import annotations

import io

from PIL import Image


def png(colour=(30, 90, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (200, 60), colour).save(out, format="PNG")
    return out.getvalue()


async def upload(browser, body: bytes, name: str = "logo.png", kind: str = "image/png", csrf: str | None = None):
    return await browser.http.post("/app/branding/logo", data={"csrf": browser.csrf if csrf is None else csrf},
                                   files={"logo": (name, body, kind)})


async def test_owner_uploads_and_removes_the_logo(owner, client, org):
    page = await owner.get("/app/branding")
    assert page.status_code == 200 and 'data-testid="no-logo"' in page.text
    assert 'enctype="multipart/form-data"' in page.text
    assert (await upload(owner, png(), csrf="forged")).status_code == 403
    r = await upload(owner, png())
    assert r.status_code == 303 and r.headers["location"] == "/app/branding?saved=1"
    page = await owner.get("/app/branding?saved=1")
    assert 'data-testid="current-logo"' in page.text and "200 × 60" in page.text
    image = await owner.get("/app/branding/logo.png")
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    # The API sees the same logo.
    assert (await client.get("/v1/tenant/logo", headers=org["key"])).content == image.content
    bad = await upload(owner, b"not an image", "x.png")
    assert bad.status_code == 422
    r = await owner.post("/app/branding/logo/delete", {})
    assert r.status_code == 303 and r.headers["location"] == "/app/branding?removed=1"
    assert (await client.get("/v1/tenant/logo", headers=org["key"])).status_code == 404


async def test_binary_uploads_arrive_intact(owner, client, org):
    # Random pixels: the file holds every byte value, CR and LF included, which a careless multipart
    # reader would alter.
    import os

    image = Image.frombytes("RGB", (64, 64), os.urandom(64 * 64 * 3))
    out = io.BytesIO()
    image.save(out, format="PNG")
    await owner.get("/app/branding")
    assert (await upload(owner, out.getvalue())).status_code == 303
    stored = Image.open(io.BytesIO((await client.get("/v1/tenant/logo", headers=org["key"])).content))
    assert stored.convert("RGB").tobytes() == image.tobytes()


async def test_the_page_is_translated(owner):
    page = await owner.get("/app/branding?lang=fr")  # French is also this DRC tenant's default
    assert "Enregistrer le logo" in page.text and "Save the logo" not in page.text
    page = await owner.get("/app/branding?lang=es")
    assert "Guardar el logotipo" in page.text


async def test_a_cashier_cannot_change_it(cashier):
    assert (await cashier.get("/app/branding")).status_code == 403
    assert (await upload(cashier, png())).status_code == 403
