"""The ARCA client without a database: the CMS (checked by openssl), WSAA and WSFEv1 over a real loopback socket."""
from __future__ import annotations

import asyncio
import base64
import shutil
import subprocess
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from lxml import etree

from stalela.authority.arca import cms, soap, wsaa, wsfe
from stalela.authority.arca.errors import (AlreadyAuthenticated, CertificateRejected, NumberMismatch, Rejected,
                                           TokenRejected, Transient)
from tests.authority.arca.conftest import CUIT, FakeWsaa, fixture, make_certificate, soap_fault

AUTH = wsfe.Auth("TOKEN", "SIGN", CUIT)
AR = {"cbte_tipo": 8, "letter": "B", "point_of_sale": 3, "number": 42, "date": "2026-12-06", "concept": 3,
      "doc_type": 96, "doc_number": "28123456", "buyer_vat_condition_id": 5, "currency": "PES", "exchange_rate": "1",
      "imp_total": "121.00", "imp_tot_conc": "0.00", "imp_neto": "100.00", "imp_op_ex": "0.00", "imp_trib": "0.00",
      "imp_iva": "21.00", "iva": [{"id": 5, "base_imp": "100.00", "importe": "21.00"}],
      "service_from": "2026-11-01", "service_to": "2026-11-30", "payment_due": "2026-12-16",
      "associated": [{"cbte_tipo": 6, "point_of_sale": 3, "number": 41, "cuit": CUIT, "date": "2026-12-01"}]}


def c14n(data: bytes) -> bytes:
    parser = etree.XMLParser(remove_blank_text=True)
    return etree.tostring(etree.fromstring(data, parser), method="c14n")


# --- CMS -----------------------------------------------------------------------------------------


def _openssl_verify(der: bytes, tmp_path) -> str:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    path = tmp_path / "tra.cms"
    path.write_bytes(der)
    done = subprocess.run(["openssl", "cms", "-verify", "-inform", "DER", "-noverify", "-in", str(path)],
                          capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


def test_tra_has_the_documented_shape():
    now = datetime(2026, 12, 6, 13, 0, tzinfo=timezone.utc)
    root = etree.fromstring(cms.build_tra("wsfe", now=now, unique_id=7))
    assert root.tag == "loginTicketRequest" and root.get("version") == "1.0"
    assert root.findtext("header/uniqueId") == "7"
    assert root.findtext("header/generationTime") == "2026-12-06T09:50:00-03:00"  # now - 10 min, with an offset
    assert root.findtext("header/expirationTime") == "2026-12-06T10:10:00-03:00"
    assert root.findtext("service") == "wsfe"


def test_software_signed_cms_verifies_with_openssl(tmp_path):
    cert, key = make_certificate()
    der = cms.login_request("wsfe", cms.SoftwareSigner(cert, key))
    out = _openssl_verify(der, tmp_path)
    assert "<service>wsfe</service>" in out and "<loginTicketRequest" in out


@pytest.mark.hsm
def test_hsm_signed_cms_verifies_with_openssl(tmp_path, pkcs11_backend):
    label = f"arca-test-{datetime.now().timestamp()}"
    public = pkcs11_backend.generate_rsa(label)
    cert, _ = make_certificate(public_key=public)
    der = cms.login_request("wsfe", cms.HsmSigner(cert, label, pkcs11_backend.sign_sha256_rsa))
    assert "<service>wsfe</service>" in _openssl_verify(der, tmp_path)


# --- WSAA ----------------------------------------------------------------------------------------


async def test_login_cms_returns_the_ticket_with_its_relations(soap):
    soap.handler = FakeWsaa()
    cert, key = make_certificate()
    ticket = await wsaa.login_cms(soap.url + "/ws/services/LoginCms", cms.SoftwareSigner(cert, key), "wsfe",
                                  allow_private=True)
    assert ticket.sign == "c2lnbg==" and ticket.cuits == (CUIT,)
    assert timedelta(hours=11) < ticket.expires_at - datetime.now(timezone.utc) <= timedelta(hours=12)
    action, body = soap.requests[0]
    root = etree.fromstring(body)
    in0 = root.find(f".//{{{wsaa.NS}}}in0").text
    assert action == '""' and base64.b64decode(in0)[:1] == b"\x30"  # a DER SEQUENCE: the CMS


@pytest.mark.parametrize("code, message, error", [
    ("coe.alreadyAuthenticated", "El CEE ya posee un TA valido para el acceso al WSN solicitado", AlreadyAuthenticated),
    ("cms.cert.expired", "Certificado expirado", CertificateRejected),
    ("cms.cert.untrusted", "Certificado no emitido por AC de confianza", CertificateRejected),
    ("coe.notAuthorized", "Computador no autorizado a acceder al servicio", CertificateRejected),
    ("wsaa.unavailable", "El servicio no esta disponible", Transient),
])
async def test_wsaa_faults_are_sorted_by_what_to_do(soap, code, message, error):
    soap.answer(500, soap_fault(code, message))
    cert, key = make_certificate()
    with pytest.raises(error):
        await wsaa.login_cms(soap.url, cms.SoftwareSigner(cert, key), allow_private=True)


@pytest.mark.parametrize("status, body", [
    (500, "<html>Internal error</html>"),
    (503, ""),
    (200, "<soapenv:Envelope xmlns:soapenv='http://schemas.xmlsoap.org/soap/envelope/'><soapenv:Body>"
          "<loginCmsResponse><loginCmsReturn>not xml</loginCmsReturn></loginCmsResponse></soapenv:Body></soapenv:Envelope>"),
    (200, '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'),
])
async def test_malformed_wsaa_answers_are_transient(soap, status, body):
    soap.answer(status, body)
    cert, key = make_certificate()
    with pytest.raises(Transient):
        await wsaa.login_cms(soap.url, cms.SoftwareSigner(cert, key), allow_private=True)


async def test_a_timeout_is_transient(soap):
    async def slow(_body, _headers):
        await asyncio.sleep(2)
        return 200, fixture("fedummy.xml")
    soap.handler = slow
    with pytest.raises(Transient):
        await wsfe.WsfeClient(soap.url, timeout=0.3, allow_private=True).fe_dummy()


def test_the_parser_expands_no_entities():
    with pytest.raises(soap.MalformedXml):
        soap.parse_xml(b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>')


# --- WSFEv1 --------------------------------------------------------------------------------------


def test_fecaesolicitar_envelope_matches_the_golden_file():
    sent = soap.envelope(wsfe.cae_request(AUTH, AR))
    assert c14n(sent) == c14n(fixture("fecaesolicitar_request.xml").encode())


def test_class_c_sends_no_iva_and_always_the_buyer_condition():
    ar = dict(AR, cbte_tipo=11, iva=[], imp_iva="0.00", imp_neto="121.00", associated=None, concept=1,
              service_from=None, service_to=None, payment_due=None, buyer_vat_condition_id=5)
    detail = wsfe.cae_request(AUTH, ar).find(f".//{{{wsfe.NS}}}FECAEDetRequest")
    names = [etree.QName(e).localname for e in detail]
    assert "Iva" not in names and "FchServDesde" not in names and "CbtesAsoc" not in names
    assert detail.findtext(f"{{{wsfe.NS}}}CondicionIVAReceptorId") == "5"


@pytest.mark.parametrize("bad", [121.0, "121.005", "NaN", "x"])
def test_amounts_are_never_floats_nor_rounded_silently(bad):
    with pytest.raises((TypeError, ValueError)):
        wsfe.cae_request(AUTH, dict(AR, imp_total=bad))


def test_decimal_amounts_are_plain_text():
    detail = wsfe.cae_request(AUTH, dict(AR, imp_total=Decimal("121"))).find(f".//{{{wsfe.NS}}}ImpTotal")
    assert detail.text == "121.00"


async def test_approved_reply_is_parsed(soap):
    soap.answer(200, fixture("fecaesolicitar_approved.xml"))
    result = await wsfe.WsfeClient(soap.url + "/wsfev1/service.asmx", allow_private=True).fe_cae_solicitar(AUTH, AR)
    assert (result.result, result.cae, result.cae_due, result.number) == ("A", "71263951827760", date(2021, 7, 11), 1838)
    assert result.observations == [(10217, result.observations[0][1])] and result.errors == []
    assert result.processed_at == "20210701172110" and "71263951827760" in result.raw
    action, _ = soap.requests[0]
    assert action == '"http://ar.gov.afip.dif.FEV1/FECAESolicitar"'


async def test_recorded_10016_is_a_number_mismatch(soap):
    soap.answer(200, fixture("fecaesolicitar_rejected.xml"))
    with pytest.raises(NumberMismatch) as caught:
        await wsfe.WsfeClient(soap.url, allow_private=True).fe_cae_solicitar(AUTH, AR)
    assert caught.value.result.result == "R" and caught.value.result.number == 504


async def test_rejection_carries_arcas_codes(soap):
    soap.answer(200, fixture("fecaesolicitar_rejected_obs.xml"))
    with pytest.raises(Rejected) as caught:
        await wsfe.WsfeClient(soap.url, allow_private=True).fe_cae_solicitar(AUTH, AR)
    assert caught.value.codes == [10242] and caught.value.result.cae is None


async def test_busy_502_and_http_500_are_transient(soap):
    client = wsfe.WsfeClient(soap.url, allow_private=True)
    soap.answer(200, fixture("error_502.xml"))
    with pytest.raises(Transient):
        await client.fe_cae_solicitar(AUTH, AR)
    soap.answer(500, "<html>Server Error</html>")
    with pytest.raises(Transient):
        await client.fe_cae_solicitar(AUTH, AR)
    soap.answer(500, soap_fault("Server", "Server was unable to process request"))
    with pytest.raises(Transient):
        await client.fe_cae_solicitar(AUTH, AR)


async def test_token_errors(soap):
    soap.answer(200, fixture("error_600.xml"))
    with pytest.raises(TokenRejected) as caught:
        await wsfe.WsfeClient(soap.url, allow_private=True).fe_comp_ultimo_autorizado(AUTH, 3, 3)
    assert caught.value.code == 600


async def test_last_authorized_query_and_dummy(soap):
    client = wsfe.WsfeClient(soap.url, allow_private=True)
    soap.answer(200, fixture("fecompultimoautorizado.xml"))
    assert await client.fe_comp_ultimo_autorizado(AUTH, 3, 3) == 503
    sent = etree.fromstring(soap.requests[-1][1])
    assert sent.findtext(f".//{{{wsfe.NS}}}PtoVta") == "3" and sent.findtext(f".//{{{wsfe.NS}}}Cuit") == CUIT
    soap.answer(200, fixture("fecompconsultar_found.xml"))
    stored = await client.fe_comp_consultar(AUTH, 3, 6, 42)
    assert (stored.cae, stored.cae_due, stored.total, stored.number, stored.result) == (
        "76123456789012", date(2026, 12, 16), "121.00", 42, "A")
    soap.answer(200, fixture("fecompconsultar_602.xml"))
    assert await client.fe_comp_consultar(AUTH, 3, 6, 43) is None
    soap.answer(200, fixture("fedummy.xml"))
    assert await client.fe_dummy() == {"AppServer": "OK", "DbServer": "OK", "AuthServer": "OK"}
