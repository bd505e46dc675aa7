"""WSAA loginCms over real HTTP: CMS verification, the TRA's rules, tickets, faults."""
from __future__ import annotations

import base64
from datetime import datetime, timedelta

import httpx
import pytest

from tests.authority.simulator.arca_support import (AR, CUIT, OTHER_CUIT, fault, login,
                                                    login_envelope, make_identity, sign_cms,
                                                    sign_openssl, tra, val, xml)

pytestmark = pytest.mark.e2e

HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}


def post(sim, body: bytes) -> httpx.Response:
    return httpx.post(sim.wsaa_url, content=body, headers=HEADERS, timeout=10)


def login_with(sim, cms: bytes) -> httpx.Response:
    return post(sim, login_envelope(cms))


def assert_fault(r: httpx.Response, code: str, text: str | None = None) -> None:
    assert r.status_code == 500, r.text
    got_code, got_text = fault(r)
    assert got_code == f"ns1:{code}", (got_code, got_text)
    if text is not None:
        assert got_text == text
    assert b"gov.afip.desein.dvadac.sua.view.wsaa.LoginFault" in r.content


def test_login_grants_a_12h_ticket_for_the_certificates_cuit(arca, arca_identity):
    r = login_with(arca, sign_cms(tra(), arca_identity))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/xml")
    # loginCmsReturn is a string: the ticket XML arrives escaped, in the endpoint's namespace.
    assert b"&lt;loginTicketResponse" in r.content
    ret = xml(r.content).xpath("//*[local-name()='loginCmsReturn']")[0]
    assert ret.tag == "{https://wsaahomo.afip.gov.ar/ws/services/LoginCms}loginCmsReturn"
    ticket = xml(ret.text.encode())
    gen = datetime.fromisoformat(val(ticket, "header/generationTime"))
    exp = datetime.fromisoformat(val(ticket, "header/expirationTime"))
    assert exp - gen == timedelta(hours=12) and gen.utcoffset() == timedelta(hours=-3)
    assert f"CUIT {CUIT}" in val(ticket, "header/destination")
    sso = xml(base64.b64decode(val(ticket, "credentials/token")))
    assert sso.tag == "sso" and sso.get("version") == "2.0"
    relation = sso.xpath("//relation")[0]
    assert relation.get("key") == CUIT and relation.get("reltype") == "4"
    login_el = sso.xpath("//login")[0]
    assert login_el.get("service") == "wsfe" and login_el.get("authmethod") == "cms"
    assert len(base64.b64decode(val(ticket, "credentials/sign"))) == 128
    tickets = arca.state()["tickets"]
    assert [(t["cuit"], t["relations"], t["service"], t["valid"]) for t in tickets] == \
        [(CUIT, [CUIT], "wsfe", True)]


def test_openssl_cms_sign_is_accepted(arca, arca_identity, tmp_path):
    r = login_with(arca, sign_openssl(tra(), arca_identity, tmp_path))
    assert r.status_code == 200, r.text


def test_ecdsa_signer_is_accepted(arca):
    r = login_with(arca, sign_cms(tra(), make_identity(ec_key=True)))
    assert r.status_code == 200, r.text


def test_asking_again_while_the_ticket_is_valid_is_already_authenticated(arca, arca_identity):
    assert login_with(arca, sign_cms(tra(), arca_identity)).status_code == 200
    r = login_with(arca, sign_cms(tra(unique_id=2), arca_identity))
    assert_fault(r, "coe.alreadyAuthenticated",
                 "El CEE ya posee un TA valido para el acceso al WSN solicitado")
    # Another certificate of the same CUIT is another (certificate, service): it gets its own.
    assert login_with(arca, sign_cms(tra(), make_identity())).status_code == 200
    # Once the ticket has expired, the same certificate may log in again.
    arca.advance_clock(12 * 3600 + 1)
    later = tra(now=arca.sim.state.now())  # a TRA made on the simulator's (advanced) clock
    assert login_with(arca, sign_cms(later, arca_identity)).status_code == 200
    assert arca.state()["counts"]["wsaa.already_authenticated"] == 1


def test_expire_tickets_control_lets_the_certificate_log_in_again(arca, arca_identity):
    assert login_with(arca, sign_cms(tra(), arca_identity)).status_code == 200
    assert httpx.post(arca.url + "/_sim/tickets/expire").json() == {"expired": 1}
    assert login_with(arca, sign_cms(tra(), arca_identity)).status_code == 200


def test_a_tampered_tra_fails_the_message_digest(arca, arca_identity):
    cms = sign_cms(tra(), arca_identity)
    tampered = cms.replace(b"<service>wsfe</service>", b"<service>wsfx</service>")
    assert tampered != cms
    assert_fault(login_with(arca, tampered), "cms.sign.invalid")


def test_a_signature_by_another_key_is_refused(arca, arca_identity):
    """The certificate in the CMS is arca_identity's, the signature the impostor's key."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.serialization import pkcs7

    impostor = make_identity()
    try:
        spliced = (pkcs7.PKCS7SignatureBuilder().set_data(tra())
                   .add_signer(arca_identity.cert, impostor.key, hashes.SHA256())
                   .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary]))
    except ValueError:  # a cryptography that checks the key against the certificate
        pytest.skip("cannot build a mismatched signer with this cryptography")
    assert_fault(login_with(arca, spliced), "cms.sign.invalid")


def test_detached_signature_and_garbage_are_bad_cms(arca, arca_identity):
    assert_fault(login_with(arca, sign_cms(tra(), arca_identity, detached=True)), "cms.bad")
    assert_fault(post(arca, login_envelope("not base64 at all!")), "cms.bad")
    assert_fault(post(arca, login_envelope(base64.b64encode(b"\x30\x03\x02\x01\x01").decode())),
                 "cms.bad")


def test_expired_certificate(arca):
    old = make_identity(not_before=datetime.now(AR) - timedelta(days=400), days=30)
    assert_fault(login_with(arca, sign_cms(tra(), old)), "cms.cert.expired", "Certificado expirado")


def test_certificate_without_cuit_or_with_a_bad_check_digit(arca):
    assert_fault(login_with(arca, sign_cms(tra(), make_identity(None))), "cms.cert.invalid")
    assert_fault(login_with(arca, sign_cms(tra(), make_identity("20267565394"))),
                 "cms.cert.invalid")


def test_trusted_ca_is_required_when_configured(make_arca):
    ca = make_identity(None, ca=True, cn="Stalela Test CA")
    sim = make_arca(ca=ca.cert)
    issued = make_identity(OTHER_CUIT, issuer=ca)
    assert login_with(sim, sign_cms(tra(), issued)).status_code == 200
    assert_fault(login_with(sim, sign_cms(tra(), make_identity())), "cms.cert.untrusted",
                 "Certificado no emitido por AC de confianza")


@pytest.mark.parametrize(("content", "code"), [
    (tra(generation=datetime.now(AR) + timedelta(hours=1),
         expiration=datetime.now(AR) + timedelta(hours=2)), "xml.generationTime.invalid"),
    (tra(generation=datetime.now(AR) - timedelta(hours=2),
         expiration=datetime.now(AR) - timedelta(hours=1)), "xml.expirationTime.expired"),
    (tra(expiration=datetime.now(AR) + timedelta(days=3)), "xml.expirationTime.invalid"),
    (tra("wsfex"), "wsn.notFound"),
    (tra(unique_id=2**32), "xml.bad"),
    (b"<loginTicketRequest version='1.0'><header>", "xml.bad"),
    (b"<other/>", "xml.bad"),
])
def test_tra_rules(arca, arca_identity, content, code):
    assert_fault(login_with(arca, sign_cms(content, arca_identity)), code)
    assert arca.state()["tickets"] == []


def test_injected_already_authenticated_strikes_a_valid_login(arca, arca_identity):
    arca.force_next("already_authenticated")
    assert_fault(login_with(arca, sign_cms(tra(), arca_identity)), "coe.alreadyAuthenticated")
    assert arca.state()["tickets"] == []  # nothing was issued
    assert login(arca.url, arca_identity)[0]


def test_already_authenticated_rate_from_the_spec(make_arca, arca_identity):
    from stalela.authority.simulator.arca import ArcaFaultSpec

    sim = make_arca(faults=ArcaFaultSpec(already_authenticated=1))
    assert_fault(login_with(sim, sign_cms(tra(), arca_identity)), "coe.alreadyAuthenticated")


def test_not_soap_is_a_client_fault(arca):
    r = post(arca, b"<hello/>")
    assert r.status_code == 500 and fault(r)[0] == "soap:Client"
    r = post(arca, b"not xml")
    assert r.status_code == 500 and fault(r)[0] == "soap:Client"
    r = post(arca, login_envelope("x").replace(b"loginCms", b"logout"))
    assert r.status_code == 500 and fault(r)[0] == "soap:Client"
