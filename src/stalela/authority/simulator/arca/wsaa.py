"""WSAA's loginCms: a verified CMS around a valid TRA buys a 12 h access ticket (TA).

The ticket's token is base64 of an ``<sso version="2.0">`` document shaped like ARCA's
(reference §1.4), naming the certificate's CUIT as the only relation; the sign is random bytes
the simulator remembers with the token (it is not a signature anyone can check: WSFE calls are
checked against the simulator's memory instead).
"""
from __future__ import annotations

import base64
import binascii
import secrets
from datetime import datetime, timezone

from cryptography import x509
from lxml import etree

from .cms import ARGENTINA, WsaaFault, certificate_cuit, check_certificate, parse_tra, verify_cms
from .soap import text, to_string
from .state import AlreadyAuthenticated, ArcaState

SERVICES = frozenset({"wsfe"})
WSAA_DN = "CN=wsaahomo, O=AFIP, C=AR, SERIALNUMBER=CUIT 33693450239"
ALREADY = ("coe.alreadyAuthenticated",
           "El CEE ya posee un TA valido para el acceso al WSN solicitado")


def _local(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).astimezone(ARGENTINA).isoformat(
        timespec="milliseconds")


def _sso(*, unique_id: int, generated: float, expires: float, cuit: str, subject: str,
         service: str) -> str:
    sso = etree.Element("sso", version="2.0")
    etree.SubElement(sso, "id", src=WSAA_DN, dst=f"CN={service}, O=AFIP, C=AR",
                     unique_id=str(unique_id), gen_time=str(int(generated) - 60),
                     exp_time=str(int(expires)))
    operation = etree.SubElement(sso, "operation", type="login", value="granted")
    login = etree.SubElement(operation, "login", entity="33693450239", service=service,
                             uid=subject, authmethod="cms", regmethod="22")
    relations = etree.SubElement(login, "relations")
    etree.SubElement(relations, "relation", key=cuit, reltype="4")
    xml = etree.tostring(sso, xml_declaration=True, encoding="UTF-8", standalone=True)
    return base64.b64encode(xml).decode()


def login(state: ArcaState, op: etree._Element, *, ca: x509.Certificate | None,
          refuse: bool = False) -> str:
    """The loginTicketResponse XML for a loginCms{in0} element; WsaaFault when refused.

    ``refuse`` is the injected ``already_authenticated`` fault: it strikes after the CMS and
    the TRA were found valid, where ARCA's own check is.
    """
    encoded = text(op, "in0")
    if encoded is None:
        raise WsaaFault("xml.bad", "No se ha podido interpretar el XML contra el SCHEMA")
    try:
        der = base64.b64decode("".join(encoded.split()), validate=True)
    except (binascii.Error, ValueError):
        raise WsaaFault("cms.bad", "El CMS no es valido: no es base64") from None
    signed = verify_cms(der)
    now = state.now()
    check_certificate(signed.certificate, now, ca)
    cuit = certificate_cuit(signed.certificate)
    tra = parse_tra(signed.content, now, SERVICES)
    if refuse:
        raise WsaaFault(*ALREADY)
    subject = signed.certificate.subject.rfc4514_string()
    unique_id = secrets.randbelow(2**32)
    try:
        ticket = state.issue_ticket(
            cuit=cuit, certificate=signed.fingerprint, subject=subject, service=tra.service,
            make_token=lambda gen, exp: _sso(unique_id=unique_id, generated=gen, expires=exp,
                                             cuit=cuit, subject=subject, service=tra.service))
    except AlreadyAuthenticated:
        raise WsaaFault(*ALREADY) from None
    response = etree.Element("loginTicketResponse", version="1.0")
    header = etree.SubElement(response, "header")
    for name, value in (("source", WSAA_DN), ("destination", subject),
                        ("uniqueId", str(unique_id)), ("generationTime", _local(ticket.generated)),
                        ("expirationTime", _local(ticket.expires))):
        etree.SubElement(header, name).text = value
    credentials = etree.SubElement(response, "credentials")
    etree.SubElement(credentials, "token").text = ticket.token
    etree.SubElement(credentials, "sign").text = ticket.sign
    return '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' + to_string(response)
