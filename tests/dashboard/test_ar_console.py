"""The consoles for an Argentine tenant: points of sale and their series, CAEs on the invoice page,
receipt types by name, IVA per rate, and ARCA per tenant in /ops."""
from __future__ import annotations

import re

from tests.authority.arca.conftest import make_certificate, pem
from tests.dashboard.conftest import Browser, email, make_user
from tests.dashboard.test_ops import operator
from tests.support.ar import CUIT, BUYER_RI, ar_tenant, receipt, record_outcome, seal


async def ar_owner(app, client):
    tenant, key = await ar_tenant(client)
    org = {"tenant": tenant, "key": key}
    await make_user(app, org, email(org, "dueno"), "owner")
    b = Browser(app)
    await b.login(email(org, "dueno"))
    return org, b


async def test_outlets_invoices_and_home_of_an_argentine_tenant(app, client):
    org, owner = await ar_owner(app, client)
    try:
        page = await owner.get("/app/outlets")
        assert page.status_code == 200 and 'name="pos_number"' in page.text
        assert "America/Argentina/Buenos_Aires" in page.text and "sin credenciales" in page.text and 'lang="es"' in page.text  # an Argentine tenant speaks Spanish
        assert "Dispositivo DGI" not in page.text
        missing = await owner.post("/app/outlets", {"code": "CAJA1", "name": "Caja 1", "timezone":
                                                    "America/Argentina/Buenos_Aires"})
        assert missing.status_code == 422 and "pos_number" in missing.text
        await owner.get("/app/outlets")
        r = await owner.post("/app/outlets", {"code": "CAJA1", "name": "Caja 1", "pos_number": "17",
                                              "timezone": "America/Argentina/Buenos_Aires"})
        assert r.status_code == 303, r.text[:500]
        outlet = (await client.get("/v1/outlets", headers=org["key"])).json()["data"][0]
        assert outlet["pos_number"] == 17

        b1, b2 = await seal(client, org["key"], receipt(outlet["id"])), await seal(client, org["key"],
                                                                                    receipt(outlet["id"]))
        a1 = await seal(client, org["key"], receipt(outlet["id"], "1", buyer=BUYER_RI))
        await record_outcome(app, b1, cae="75123456789012", observations=((10217, "El CAE esta vigente"),))
        await record_outcome(app, b2, errors=((10016, "El numero no es el proximo a autorizar"),))

        page = await owner.get("/app/outlets")
        assert 'data-testid="pos-CAJA1">00017<' in page.text
        table = page.text.split('data-testid="series-CAJA1"', 1)[1].split("</table>", 1)[0]
        rows = {m.group(1): m.group(2) for m in re.finditer(r"<tr><th scope=\"row\">([^<]+) <span[^>]*>\(\d+\)</span></th>(.*?)</tr>", table)}
        assert set(rows) == {"Factura A", "Factura B"}, table
        cells = lambda row: re.findall(r'<td class="num">(?:<span[^>]*>)?(\d+)', row)  # noqa: E731
        assert cells(rows["Factura B"]) == ["2", "0", "1", "1"]  # last number, pending, acknowledged, rejected
        assert cells(rows["Factura A"]) == ["1", "1", "0", "0"]

        inv = await owner.get(f"/app/invoices/{b1['id']}")
        assert inv.status_code == 200
        assert "Factura B B 00017-00000001" in inv.text
        assert 'data-testid="cae"><code>75123456789012</code> · Vto. CAE 2026-12-31' in inv.text
        assert "10217" in inv.text and "El CAE esta vigente" in inv.text
        assert 'data-testid="arca-qr"' in inv.text and "https://www.afip.gob.ar/fe/qr/?p=" in inv.text
        assert "IVA 21\xa0%" in inv.text and "IVA 10,5\xa0%" in inv.text and "<svg" in inv.text
        rejected = await owner.get(f"/app/invoices/{b2['id']}")
        assert "rechazado" in rejected.text and "10016" in rejected.text and "todavía no autorizado" in rejected.text
        pending = await owner.get(f"/app/invoices/{a1['id']}")
        assert pending.status_code == 200 and "Juan Pérez" in pending.text and "CUIT 20267565393" in pending.text

        listing = await owner.get("/app/invoices")
        assert listing.status_code == 200 and "Factura A" in listing.text and ">ARCA<" in listing.text
        only_a = await owner.get("/app/invoices?type=1")
        assert only_a.status_code == 200 and a1["fiscal_number"] in only_a.text
        assert b1["fiscal_number"] not in only_a.text
        only_rejected = await owner.get("/app/invoices?status=rejected")
        assert b2["fiscal_number"] in only_rejected.text and b1["fiscal_number"] not in only_rejected.text

        home = await owner.get("/app")
        assert home.status_code == 200 and "IVA 21\xa0%" in home.text and "Sincronización con ARCA" in home.text
        x = await owner.get(f"/app/reports/x/{outlet['id']}")
        assert x.status_code == 200 and "IVA 10,5\xa0%" in x.text and "Factura B: 2" in x.text
    finally:
        await owner.aclose()


async def test_ops_shows_arca_per_tenant(app, client):
    org, owner = await ar_owner(app, client)
    await owner.aclose()
    outlet = (await client.post("/v1/outlets", json={"code": "PV9", "name": "Caja", "pos_number": 9},
                                headers=org["key"])).json()
    sealed = [await seal(client, org["key"], receipt(outlet["id"])) for _ in range(3)]
    await record_outcome(app, sealed[0], cae="75123456789012")
    await record_outcome(app, sealed[1], errors=((10048, "Importe total mal calculado"),))
    ops = await operator(app)
    try:
        page = await ops.get("/ops/sync")
        assert page.status_code == 200
        table = page.text.split('data-testid="arca-table"', 1)[1].split("</table>", 1)[0]
        row = next(r for r in table.split("<tr>") if org["tenant"]["id"] in r)
        assert "not configured" in row and f"CUIT {CUIT}" in row
        assert re.findall(r'<td class="num">(?:<span[^>]*>)?(\d+)', row) == ["1", "1", "1"]  # pending, ack, rejected

        cert, key = make_certificate(CUIT)
        r = await client.put("/v1/authority/arca/credentials", headers=org["key"], json={
            "certificate": pem(cert), "private_key": pem(key), "environment": "homologation"})
        assert r.status_code == 200, r.text
        page = await ops.get("/ops/sync")
        table = page.text.split('data-testid="arca-table"', 1)[1].split("</table>", 1)[0]
        row = next(r for r in table.split("<tr>") if org["tenant"]["id"] in r)
        assert "homologation" in row and ">active<" in row and f"{cert.not_valid_after_utc:%b} {cert.not_valid_after_utc.day}, {cert.not_valid_after_utc.year}" in row
    finally:
        await ops.aclose()
