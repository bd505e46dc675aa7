"""WSFEv1 over real HTTP with hand-written SOAP: authentication, numbering, every receipt rule."""
from __future__ import annotations

from datetime import datetime, timedelta

import httpx
import pytest

from tests.authority.simulator.arca_support import (CUIT, OTHER_CUIT, Wsfe, alic, errors, fault,
                                                    find, observations, receipt, val, xml, ymd)

pytestmark = pytest.mark.e2e

ASOC = "<CbteAsoc><Tipo>6</Tipo><PtoVta>3</PtoVta><Nro>1</Nro><Cuit>20267565393</Cuit></CbteAsoc>"


def first_detail(result) -> dict:
    det = find(result, "FeDetResp/FECAEDetResponse")
    return {name: val(det, name) for name in ("CbteDesde", "CbteFch", "Resultado", "CAE",
                                              "CAEFchVto")}


def rejected_with(wsfe: Wsfe, code: int, *, number: int = 1, cbte_type: int = 6,
                  **over: object) -> None:
    result = wsfe.solicitar(receipt(number, **over), cbte_type=cbte_type)
    assert val(result, "FeCabResp/Resultado") == "R"
    assert first_detail(result)["Resultado"] == "R" and first_detail(result)["CAE"] == ""
    assert code in observations(result) + errors(result), (code, observations(result),
                                                           errors(result))
    assert val(wsfe.last(cbte_type=cbte_type), "CbteNro") == str(number - 1)  # not advanced


def approved(wsfe: Wsfe, number: int = 1, *, cbte_type: int = 6, pos: int = 3,
             **over: object) -> dict:
    result = wsfe.solicitar(receipt(number, **over), cbte_type=cbte_type, pos=pos)
    assert val(result, "FeCabResp/Resultado") == "A", (errors(result), observations(result))
    return first_detail(result)


def wsfe_ns() -> str:
    return "http://ar.gov.afip.dif.FEV1/"


# -------------------------------------------------------------------------- plain operations


def test_fe_dummy_needs_no_auth(arca):
    client = Wsfe(arca.url)
    try:
        result = client.call("FEDummy")
        assert [val(result, n) for n in ("AppServer", "DbServer", "AuthServer")] == ["OK"] * 3
    finally:
        client.close()


def test_dispatch_by_body_when_there_is_no_soapaction_and_refusals(arca):
    client = Wsfe(arca.url)
    try:
        assert val(client.call("FEDummy", action=None), "AppServer") == "OK"
        r = client.post("FEDummy", "", action=f'"{wsfe_ns()}FECAESolicitar"')
        assert r.status_code == 500 and fault(r)[0] == "soap:Client"
        r = client.post("FENoSuchThing", "", action=None)
        assert r.status_code == 500 and fault(r)[0] == "soap:Client"
        r = client.http.post("/wsfev1/service.asmx", content=b"<not-soap/>")
        assert r.status_code == 500 and fault(r)[0] == "soap:Client"
    finally:
        client.close()


def test_answers_carry_fe_header_info(wsfe):
    r = wsfe.post("FECompUltimoAutorizado",
                  f"{wsfe.auth()}<PtoVta>3</PtoVta><CbteTipo>6</CbteTipo>")
    root = xml(r.content)
    assert find(root, "Header/FEHeaderInfo/ambiente") is not None
    response = find(root, "Body/FECompUltimoAutorizadoResponse")
    assert response.tag == f"{{{wsfe_ns()}}}FECompUltimoAutorizadoResponse"


def test_ultimo_autorizado_starts_at_zero_and_follows_alignment(wsfe, arca):
    assert val(wsfe.last(), "CbteNro") == "0"
    arca.set_last(CUIT, 3, 6, 41)
    result = wsfe.last()
    assert [val(result, n) for n in ("PtoVta", "CbteTipo", "CbteNro")] == ["3", "6", "41"]
    assert val(wsfe.last(cbte_type=1), "CbteNro") == "0"  # per (cuit, pos, type)
    r = httpx.put(arca.url + f"/_sim/series/{CUIT}/3/6", json={"last": 7})
    assert r.status_code == 200 and val(wsfe.last(), "CbteNro") == "7"


def test_param_tables(wsfe):
    a = wsfe.call("FEParamGetCondicionIvaReceptor", f"{wsfe.auth()}<ClaseCmp>A</ClaseCmp>")
    assert sorted(int(i.text) for i in a.xpath(".//*[local-name()='Id']")) == [1, 6, 13, 16]
    every = wsfe.call("FEParamGetCondicionIvaReceptor", wsfe.auth())
    assert len(every.xpath(".//*[local-name()='CondicionIvaReceptor']")) == 11
    iva = wsfe.call("FEParamGetTiposIva", wsfe.auth())
    assert sorted(int(i.text) for i in iva.xpath(".//*[local-name()='Id']")) == [3, 4, 5, 6, 8, 9]


# ---------------------------------------------------------------------------- authentication


def test_unknown_token_wrong_sign_and_foreign_cuit(wsfe):
    good = wsfe.token, wsfe.sign
    wsfe.token = "bm90IGEgdG9rZW4="
    assert errors(wsfe.last()) == [600]
    wsfe.token, wsfe.sign = good[0], "c2lnbg=="
    assert errors(wsfe.last()) == [600]
    wsfe.sign = good[1]
    assert errors(wsfe.last(cuit=OTHER_CUIT)) == [601]
    assert val(wsfe.solicitar(receipt(1)), "FeCabResp/Resultado") == "A"  # the ticket is fine


def test_expired_ticket_is_600(wsfe, arca):
    arca.advance_clock(12 * 3600 + 1)
    result = wsfe.solicitar(receipt(1, CbteFch=arca.sim.state.now().strftime("%Y%m%d")))
    assert errors(result) == [600]
    assert find(result, "FeCabResp") is None
    assert "ValidacionDeToken" in val(result, "Errors/Err/Msg")
    assert arca.last(CUIT, 3, 6) == 0


# ----------------------------------------------------------------------------- authorisation


def test_approved_receipt_shape_and_consultar(wsfe, arca):
    result = wsfe.solicitar(receipt(1))
    cab = {n: val(result, f"FeCabResp/{n}") for n in
           ("Cuit", "PtoVta", "CbteTipo", "CantReg", "Resultado", "Reproceso", "FchProceso")}
    assert cab | {"FchProceso": None} == {"Cuit": CUIT, "PtoVta": "3", "CbteTipo": "6",
                                          "CantReg": "1", "Resultado": "A", "Reproceso": "N",
                                          "FchProceso": None}
    datetime.strptime(cab["FchProceso"], "%Y%m%d%H%M%S")
    det = first_detail(result)
    assert det["Resultado"] == "A" and len(det["CAE"]) == 14 and det["CAE"].isdigit()
    assert det["CbteFch"] == ymd()
    due = datetime.strptime(det["CbteFch"], "%Y%m%d") + timedelta(days=10)
    assert det["CAEFchVto"] == f"{due:%Y%m%d}"
    assert find(result, "Errors") is None and observations(result) == []
    assert val(wsfe.last(), "CbteNro") == "1"

    got = wsfe.consultar(1)
    assert val(got, "ResultGet/CodAutorizacion") == det["CAE"]
    assert val(got, "ResultGet/EmisionTipo") == "CAE"
    assert val(got, "ResultGet/ImpTotal") == "121.00"
    assert val(got, "ResultGet/Iva/AlicIva/Importe") == "21.00"
    assert val(got, "ResultGet/FchVto") == det["CAEFchVto"]
    assert errors(wsfe.consultar(2)) == [602]

    state = httpx.get(arca.url + "/_sim/state").json()
    series = state["series"][f"{CUIT}/3/6"]
    assert series["last"] == 1 and [r["cae"] for r in series["receipts"]] == [det["CAE"]]
    assert arca.caes(CUIT, 3, 6) == {1: det["CAE"]}


def test_numbers_are_consecutive_and_only_advance_on_approval(wsfe, arca):
    assert approved(wsfe, 1)["CbteDesde"] == "1"
    result = wsfe.solicitar(receipt(1))  # the same number again
    assert errors(result) == [10016] and first_detail(result)["CAE"] == ""
    assert errors(wsfe.solicitar(receipt(3))) == [10016]  # a gap
    rejected_with(wsfe, 10048, number=2, ImpTotal="120.00")
    approved(wsfe, 2)
    assert list(arca.caes(CUIT, 3, 6)) == [1, 2]
    assert len(set(arca.caes(CUIT, 3, 6).values())) == 2


def test_a_range_is_refused(wsfe):
    result = wsfe.solicitar(receipt(1, CbteHasta=2))
    assert errors(result) == [10902]


def test_batch_of_two_and_cantreg(wsfe):
    result = wsfe.solicitar(receipt(1), receipt(2))
    assert val(result, "FeCabResp/Resultado") == "A"
    assert len(result.xpath(".//*[local-name()='FECAEDetResponse']")) == 2
    result = wsfe.solicitar(receipt(3), cant=2)
    assert errors(result) == [10901] and val(result, "FeCabResp/Resultado") == "R"
    result = wsfe.solicitar(receipt(3), receipt(5))  # the second one skips a number
    assert val(result, "FeCabResp/Resultado") == "P" and errors(result) == [10016]
    assert val(wsfe.last(), "CbteNro") == "3"


def test_header_and_malformed_fields(wsfe):
    assert errors(wsfe.solicitar(receipt(1), cbte_type=4)) == [10903]
    assert errors(wsfe.solicitar(receipt(1), pos=0)) == [10903]
    assert errors(wsfe.solicitar(receipt(1, ImpTotal="12,1"))) == [10904]
    assert errors(wsfe.solicitar(receipt(1, ImpTotal="NaN"))) == [10904]
    assert errors(wsfe.solicitar(receipt(1, ImpNeto="-1"))) == [10904]
    assert errors(wsfe.solicitar(receipt(1, ImpIVA=None))) == [10904]
    assert errors(wsfe.solicitar(receipt(1, Concepto=4))) == [10904]
    assert errors(wsfe.solicitar(receipt(1, CbteFch="2026-01-01"))) == [10904]


# ---------------------------------------------------------------------------------- dates


def test_date_window_products(wsfe):
    rejected_with(wsfe, 10016, CbteFch=ymd(-6))
    rejected_with(wsfe, 10016, CbteFch=ymd(2))
    assert approved(wsfe, 1, CbteFch=ymd(-5))["CbteFch"] == ymd(-5)
    approved(wsfe, 2, CbteFch=ymd(-2))
    # Inside the window, but before the last authorised date of the series.
    rejected_with(wsfe, 10016, number=3, CbteFch=ymd(-3))
    approved(wsfe, 3, CbteFch=ymd(-2))
    assert approved(wsfe, 4, CbteFch=None)["CbteFch"] == ymd()  # absent: the processing date
    assert approved(wsfe, 5, CbteFch=ymd(1))["CbteFch"] == ymd(1)  # a day ahead is tolerated


def test_services_window_and_required_dates(wsfe):
    service = {"Concepto": 2, "FchServDesde": ymd(-30), "FchServHasta": ymd(-1),
               "FchVtoPago": ymd(10)}
    rejected_with(wsfe, 10016, CbteFch=ymd(-15), **service)
    rejected_with(wsfe, 10910, **(service | {"FchVtoPago": None}))
    rejected_with(wsfe, 10910, **(service | {"FchServDesde": ymd(0), "FchServHasta": ymd(-1)}))
    rejected_with(wsfe, 10910, FchServDesde=ymd(-3))  # products must not send them
    approved(wsfe, 1, CbteFch=ymd(-14), **service)
    approved(wsfe, 2, **(service | {"Concepto": 3}))


# ----------------------------------------------------------------------------------- amounts


def test_totals_must_add_up_exactly_in_decimal(wsfe):
    rejected_with(wsfe, 10048, ImpTotal="121.01")
    # 0.1 + 0.2 == 0.3 only in decimal arithmetic: the simulator never goes through float.
    approved(wsfe, 1, ImpTotal="0.3", ImpTotConc="0.2", ImpNeto="0.1", ImpIVA="0",
             Iva=alic(3, "0.1", "0"))


def test_iva_sum_per_rate_amount_and_bases(wsfe):
    rejected_with(wsfe, 10905, ImpIVA="21.00", ImpTotal="121.00",
                  Iva=alic(5, "100.00", "21.00") + alic(3, "0.00", "1.00"))
    rejected_with(wsfe, 10906, ImpIVA="21.02", ImpTotal="121.02", Iva=alic(5, "100.00", "21.02"))
    rejected_with(wsfe, 10907, ImpNeto="110.00", ImpTotal="131.00")
    rejected_with(wsfe, 10907, Iva=None, ImpIVA="0.00", ImpTotal="100.00")
    rejected_with(wsfe, 10909, Iva=alic(7, "100.00", "21.00"))
    # Within a cent of round(base x rate, 2) is accepted: 33.33 x 21 % = 6.9993 -> 7.00.
    approved(wsfe, 1, ImpNeto="33.33", ImpIVA="6.99", ImpTotal="40.32",
             Iva=alic(5, "33.33", "6.99"))
    mixed = alic(5, "100.00", "21.00") + alic(4, "50.00", "5.25") + alic(6, "10", "2.70") + \
        alic(8, "20.00", "1.00") + alic(9, "40.00", "1.00") + alic(3, "5.00", "0.00")
    approved(wsfe, 2, ImpNeto="225.00", ImpIVA="30.95", ImpTotal="270.95", ImpOpEx="15.00",
             Iva=mixed)


def test_class_c_sends_no_iva(wsfe):
    plain_c = {"ImpNeto": "100.00", "ImpIVA": "0.00", "ImpTotal": "100.00", "Iva": None}
    rejected_with(wsfe, 10908, cbte_type=11)  # the default receipt carries 21 % IVA
    rejected_with(wsfe, 10908, cbte_type=11, **(plain_c | {"Iva": alic(3, "100.00", "0.00")}))
    approved(wsfe, 1, cbte_type=11, **plain_c)


def test_tributos_must_add_up(wsfe):
    trib = "<Tributo><Id>99</Id><Desc>Percepcion</Desc><BaseImp>100</BaseImp><Alic>3</Alic>" \
           "<Importe>3.00</Importe></Tributo>"
    rejected_with(wsfe, 10913, ImpTrib="3.00", ImpTotal="124.00")
    approved(wsfe, 1, ImpTrib="3.00", ImpTotal="124.00", Tributos=trib)


# ------------------------------------------------------------------------- receiver, notes, FX


def test_condicion_iva_receptor(wsfe):
    rejected_with(wsfe, 10246, CondicionIVAReceptorId=None)
    rejected_with(wsfe, 10242, CondicionIVAReceptorId=1)  # B to a responsable inscripto
    rejected_with(wsfe, 10242, CondicionIVAReceptorId=2)  # not an RG 5616 id at all
    a = {"DocTipo": 80, "DocNro": OTHER_CUIT}
    rejected_with(wsfe, 10242, cbte_type=1, CondicionIVAReceptorId=5, **a)
    for number, condition in enumerate((1, 6, 13, 16), start=1):
        approved(wsfe, number, cbte_type=1, CondicionIVAReceptorId=condition, **a)
    approved(wsfe, 1, cbte_type=11, CondicionIVAReceptorId=1, ImpIVA="0.00", ImpTotal="100.00",
             Iva=None)  # C goes to anyone


def test_class_a_needs_a_cuit(wsfe):
    rejected_with(wsfe, 10013, cbte_type=1, CondicionIVAReceptorId=1, DocTipo=96,
                  DocNro="30111222")


def test_notes_need_associated_receipts(wsfe):
    rejected_with(wsfe, 10911, cbte_type=8)
    approved(wsfe, 1, cbte_type=8, CbtesAsoc=ASOC)
    got = wsfe.consultar(1, cbte_type=8)
    assert val(got, "ResultGet/CbtesAsoc/CbteAsoc/Nro") == "1"


def test_currency(wsfe):
    rejected_with(wsfe, 10912, MonCotiz="1.5")
    rejected_with(wsfe, 10912, MonId="EUR", MonCotiz="1100")
    rejected_with(wsfe, 10912, MonId="DOL", MonCotiz="0")
    rejected_with(wsfe, 10912, MonId=None)
    approved(wsfe, 1, MonId="DOL", MonCotiz="1000.50")


def test_rejection_lists_every_observation_in_order(wsfe):
    result = wsfe.solicitar(receipt(1, ImpTotal="1", CondicionIVAReceptorId=None, MonCotiz="2"))
    assert observations(result) == [10048, 10246, 10912]
    assert errors(result) == []


def test_concurrent_requests_for_one_number_get_one_cae(wsfe, arca):
    """Eight callers race for number 1 over separate connections: exactly one wins."""
    from concurrent.futures import ThreadPoolExecutor

    def attempt(_: int) -> str:
        caller = Wsfe(arca.url, wsfe.token, wsfe.sign)
        try:
            return val(caller.solicitar(receipt(1)), "FeCabResp/Resultado")
        finally:
            caller.close()

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(attempt, range(8)))
    assert sorted(results) == ["A"] + ["R"] * 7
    assert list(arca.caes(CUIT, 3, 6)) == [1]
