"""An Argentine tenant for the tests of reports, consoles and the CLI: a responsable inscripto with a
point of sale, and receipts of every kind (A and B at several rates, a credit and a debit note).

No ARCA here: receipts stay pending (tests/authority/arca/test_agent.py drives the simulator)."""
from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from tests.conftest import OPERATOR_TOKEN

CUIT = "30712345671"  # check digit valid
BUYER_RI = {"doc_type": "CUIT", "doc_number": "20267565393", "name": "Juan Pérez",
            "vat_condition": "responsable_inscripto"}


async def ar_tenant(client, name: str = "Kiosco SRL", vat_condition: str = "responsable_inscripto"):
    r = await client.post("/v1/tenants", json={"name": name, "tax_id": "30-71234567-1", "jurisdiction": "AR",
                                               "ar": {"vat_condition": vat_condition}},
                          headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
    assert r.status_code == 201, r.text
    return r.json()["tenant"], {"Authorization": f"Bearer {r.json()['api_key']}"}


async def ar_outlet(client, headers, pos: int | None = None, code: str | None = None):
    pos = pos or int(uuid.uuid4().int % 90000) + 1
    r = await client.post("/v1/outlets", json={"code": code or f"PV{pos}", "name": "Caja 1", "pos_number": pos},
                          headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def receipt(outlet_id: str, type_: str = "6", **over: Any) -> dict[str, Any]:
    body = {"outlet_id": outlet_id, "type": type_,
            "lines": [{"description": "Yerba mate 1 kg", "quantity": "2", "unit_price": "3025.00", "vat_rate": "21"},
                      {"description": "Pan", "quantity": "1", "unit_price": "1000", "vat_rate": "10.5"}]}
    body.update(over)
    return body


async def seal(client, headers, body) -> dict[str, Any]:
    r = await client.post("/v1/invoices", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


async def a_day_of_receipts(client, headers, outlet_id: str) -> list[dict[str, Any]]:
    """B receipts at 21 and 10.5 %, an A receipt at 21 and 27 % and exento, a credit note B on the first
    and a debit note A on the A receipt: every sign and several rates."""
    sealed = [await seal(client, headers, receipt(outlet_id))]
    sealed.append(await seal(client, headers, receipt(outlet_id, lines=[
        {"description": "Gaseosa", "quantity": "3", "unit_price": "1210", "vat_rate": "21"}])))
    a = await seal(client, headers, receipt(outlet_id, "1", buyer=BUYER_RI, lines=[
        {"description": "Servicio técnico", "quantity": "1", "unit_price": "10000", "vat_rate": "21"},
        {"description": "Gas", "quantity": "2", "unit_price": "500.50", "vat_rate": "27"},
        {"description": "Libro", "quantity": "1", "unit_price": "800", "vat_rate": "exento"}]))
    sealed.append(a)
    sealed.append(await seal(client, headers, receipt(outlet_id, "8", original=sealed[0]["id"], lines=[
        {"description": "Devolución pan", "quantity": "1", "unit_price": "1000", "vat_rate": "10.5"}])))
    sealed.append(await seal(client, headers, receipt(outlet_id, "2", original=a["id"], buyer=BUYER_RI, lines=[
        {"description": "Intereses", "quantity": "1", "unit_price": "300", "vat_rate": "21"}])))
    return sealed


ALIC_RATE = {3: "0", 4: "10.5", 5: "21", 6: "27", 8: "5", 9: "2.5"}  # AlicIva Id -> the engine's rate code


def sum_of_ar_blocks(sealed: list[dict[str, Any]]) -> dict[str, Any]:
    """What a Z must say, from the sealed ``ar`` blocks alone: credit notes subtracted, everything else
    (facturas and debit notes) added, IVA per rate code."""
    total = iva = Decimal(0)
    per_rate: dict[str, list[Decimal]] = {}
    for s in sealed:
        ar = s["seal"]["payload"]["ar"]
        sign = -1 if s["type"] in ("3", "8", "13") else 1
        total += sign * Decimal(ar["imp_total"])
        iva += sign * Decimal(ar["imp_iva"])
        for alic in ar["iva"] or ():
            acc = per_rate.setdefault(ALIC_RATE[alic["id"]], [Decimal(0), Decimal(0)])
            acc[0] += sign * Decimal(alic["base_imp"])
            acc[1] += sign * Decimal(alic["importe"])
        if Decimal(ar["imp_op_ex"]):
            acc = per_rate.setdefault("exento", [Decimal(0), Decimal(0)])
            acc[0] += sign * Decimal(ar["imp_op_ex"])
    return {"total": f"{total:.2f}", "iva": f"{iva:.2f}",
            "per_rate": {code: (f"{b:.2f}", f"{v:.2f}") for code, (b, v) in per_rate.items()}}


async def record_outcome(app, invoice: dict[str, Any], *, cae: str | None = None,
                         observations: tuple[tuple[int, str], ...] = (),
                         errors: tuple[tuple[int, str], ...] = ()) -> None:
    """Record ARCA's answer for a sealed receipt the agent's own way (its acknowledge / reject step),
    without a simulator: a CAE, or a rejection when ``cae`` is None."""
    from datetime import date

    from stalela.authority.arca import agent

    ar = invoice["seal"]["payload"]["ar"]
    job = agent.Job(invoice["tenant_id"], invoice["id"], invoice["seal"]["payload"]["series_id"],  # noqa: SLF001
                     invoice["fiscal_number"], ar, invoice["seal"]["payload"]["seller_tax_id"], False)
    if cae is None:
        await agent._reject(app.state.db, job, "arca_rejected", list(errors), list(observations))  # noqa: SLF001
    else:
        await agent.acknowledge(app.state.db, job, cae, date(2026, 12, 31), list(observations), None)  # noqa: SLF001
