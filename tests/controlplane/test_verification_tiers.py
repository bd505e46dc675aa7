"""The public pages a QR code opens, for a dedicated tenant: the URL names the tenant, whose database the
page reads; a URL without it reads the shared database, as printed QR codes always did."""
from __future__ import annotations

from urllib.parse import urlsplit

from stalela.fiscal.invoices.verification import qr_svg
from tests.controlplane.conftest import provisioned, seal, shared


def _local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def _json(client, url: str):
    return await client.get(url, headers={"Accept": "application/json"})


async def test_a_dedicated_tenants_qr_code_verifies(tier_client, tier_app, operator_headers):
    dedicated, d_headers = await provisioned(tier_client, tier_app, operator_headers)
    common, s_headers = await shared(tier_client, operator_headers)
    d_invoice = await seal(tier_client, dedicated, d_headers)
    s_invoice = await seal(tier_client, common, s_headers)

    assert urlsplit(d_invoice["qr"]).query == f"t={dedicated['id']}"
    page = await _json(tier_client, _local(d_invoice["qr"]))
    assert page.status_code == 200, page.text
    assert page.json()["authentic"] is True and page.json()["fiscal_number"] == d_invoice["fiscal_number"]
    html = await tier_client.get(_local(d_invoice["qr"]))
    assert html.status_code == 200 and "Facture authentique" in html.text
    # The QR code image encodes the URL printed on the receipt, the tenant with it.
    svg = await tier_client.get(f"/verify/{d_invoice['id']}/qr.svg?t={dedicated['id']}")
    assert svg.status_code == 200 and svg.content == qr_svg(d_invoice["qr"])

    # Without the tenant, or with another one, the page looks where that says and does not find it.
    assert (await _json(tier_client, f"/verify/{d_invoice['id']}")).status_code == 404
    assert (await _json(tier_client, f"/verify/{d_invoice['id']}?t={common['id']}")).status_code == 404
    assert (await _json(tier_client, f"/verify/{s_invoice['id']}?t={dedicated['id']}")).status_code == 404
    for bad in ("ten_nope", "bad$tenant", "x" * 65, "../../etc"):
        for path in (f"/verify/{d_invoice['id']}", f"/verify/{d_invoice['id']}/qr.svg"):
            r = await tier_client.get(path, params={"t": bad})
            assert r.status_code == 404, (path, bad, r.text)
    assert (await _json(tier_client, f"/verify/{d_invoice['id']}?t={'x' * 1001}")).status_code == 422
    # A visitor (no JSON asked for) gets the "not known" page for a tenant parameter that makes no sense.
    page = await tier_client.get(f"/verify/{d_invoice['id']}", params={"t": "x" * 1001})
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")

    # A shared tenant's receipt: with its tenant as printed now, and without, as printed before the tiers.
    assert (await _json(tier_client, _local(s_invoice["qr"]))).json()["authentic"] is True
    assert (await _json(tier_client, f"/verify/{s_invoice['id']}")).json()["authentic"] is True


async def test_a_dedicated_tenants_z_report_verifies(tier_client, tier_app, operator_headers):
    dedicated, headers = await provisioned(tier_client, tier_app, operator_headers)
    await seal(tier_client, dedicated, headers)
    r = await tier_client.post(f"/v1/outlets/{dedicated['outlet']}/z-reports", json={}, headers=headers)
    assert r.status_code == 201, r.text
    z = r.json()
    assert dict(p.split("=") for p in urlsplit(z["qr"]).query.split("&")) == {"h": z["seal"]["hash"],
                                                                               "t": dedicated["id"]}
    page = await _json(tier_client, _local(z["qr"]))
    assert page.status_code == 200 and page.json()["authentic"] is True and page.json()["number"] == z["number"]
    assert (await _json(tier_client, f"/verify/z/{z['id']}?h={z['seal']['hash']}")).status_code == 404


async def test_the_console_shows_the_qr_code_with_the_tenant(tier_client, tier_app, operator_headers):
    """The console's invoice page shows the QR code printed on the receipt (the tenant in it)."""
    from tests.dashboard.conftest import Browser, make_user

    dedicated, headers = await provisioned(tier_client, tier_app, operator_headers)
    invoice = await seal(tier_client, dedicated, headers)
    address = f"owner.{dedicated['id'][-12:]}@verify.cd"
    await make_user(tier_app, {"tenant": dedicated}, address, "owner")
    owner = Browser(tier_app)
    try:
        await owner.login(address)
        page = await owner.get(f"/app/invoices/{invoice['id']}")
        assert page.status_code == 200 and f"/verify/{invoice['id']}?t={dedicated['id']}" in page.text
        assert (await owner.http.get(_local(invoice["qr"]))).status_code == 200
    finally:
        await owner.aclose()
