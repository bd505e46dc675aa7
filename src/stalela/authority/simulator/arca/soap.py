"""SOAP 1.1 envelopes for the ARCA simulator: reading requests, writing answers and faults.

Requests are read by local name, ignoring namespace prefixes (clients differ: zeep qualifies
every element, hand-written envelopes often use a default namespace, and Axis accepts both).
Answers are written in ARCA's shapes: WSFEv1 as .NET ASMX does (default namespace on the
``<Op>Response`` element, an ``FEHeaderInfo`` SOAP header), WSAA as Apache Axis 1.4 does (faults
with ``ns1:`` codes in the Axis namespace and an ``exceptionName`` detail).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Union

from lxml import etree

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XSD = "http://www.w3.org/2001/XMLSchema"
FEV1 = "http://ar.gov.afip.dif.FEV1/"
AXIS = "http://xml.apache.org/axis/"
# The recorded loginCmsResponse is in the namespace of the endpoint's own URL (reference §1.1).
WSAA_RESPONSE_NS = "https://wsaahomo.afip.gov.ar/ws/services/LoginCms"
WSAA_REQUEST_NS = "http://wsaa.view.sua.dvadac.desein.afip.gov"
MAX_BODY = 1_000_000  # bytes; a TRA and a batch of receipts are a few kB

# A node's content: text, a number, nothing (an empty element), or child nodes.
Value = Union[str, int, Decimal, None, Sequence["Node"]]
Node = tuple[str, Value]


class SoapError(Exception):
    """A request that is not a usable SOAP 1.1 message: answered with a soap:Client fault."""


def _parser() -> etree.XMLParser:
    # No DTDs, no entity expansion, no network: the body comes from whoever connects.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           huge_tree=False, remove_comments=True)


def parse_xml(data: bytes) -> etree._Element:
    if len(data) > MAX_BODY:
        raise SoapError(f"the request is larger than {MAX_BODY} bytes")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise SoapError(f"the request is not well-formed XML: {exc}") from None
    if root is None:
        raise SoapError("the request is empty")
    return root


def local(el: etree._Element) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


def children(el: etree._Element | None, name: str | None = None) -> list[etree._Element]:
    if el is None:
        return []
    return [c for c in el if isinstance(c.tag, str) and (name is None or local(c) == name)]


def child(el: etree._Element | None, name: str) -> etree._Element | None:
    found = children(el, name)
    return found[0] if found else None


def text(el: etree._Element | None, name: str) -> str | None:
    """The stripped text of ``el``'s child ``name``; None when absent or empty (xsi:nil too)."""
    c = child(el, name)
    if c is None or c.get(f"{{{XSI}}}nil") in ("true", "1"):
        return None
    value = (c.text or "").strip()
    return value or None


def body_operation(data: bytes) -> etree._Element:
    """The first element inside soap:Body of a SOAP 1.1 envelope."""
    root = parse_xml(data)
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        raise SoapError("the root element is not a SOAP 1.1 Envelope "
                        f"({{{SOAP_ENV}}}Envelope)")
    body = root.find(f"{{{SOAP_ENV}}}Body")
    ops = children(body)
    if body is None or not ops:
        raise SoapError("the envelope has no Body, or an empty one")
    return ops[0]


# ------------------------------------------------------------------------------- writing


def _fmt(value: str | int | Decimal) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def build(parent: etree._Element, nodes: Iterable[Node], ns: str | None) -> None:
    for name, value in nodes:
        el = etree.SubElement(parent, f"{{{ns}}}{name}" if ns else name)
        if value is None:
            continue
        if isinstance(value, (str, int, Decimal)):
            el.text = _fmt(value)
        else:
            build(el, value, ns)


def _envelope(header: etree._Element | None = None) -> tuple[etree._Element, etree._Element]:
    env = etree.Element(f"{{{SOAP_ENV}}}Envelope",
                        nsmap={"soap": SOAP_ENV, "xsi": XSI, "xsd": XSD})
    if header is not None:
        etree.SubElement(env, f"{{{SOAP_ENV}}}Header").append(header)
    return env, etree.SubElement(env, f"{{{SOAP_ENV}}}Body")


def serialize(env: etree._Element) -> bytes:
    return etree.tostring(env, xml_declaration=True, encoding="utf-8")


def wsfe_response(operation: str, result: Sequence[Node], header: Sequence[Node]) -> bytes:
    """``<OpResponse xmlns=FEV1><OpResult>...</OpResult></OpResponse>`` with FEHeaderInfo."""
    info = etree.Element(f"{{{FEV1}}}FEHeaderInfo", nsmap={None: FEV1})
    build(info, header, FEV1)
    env, body = _envelope(info)
    response = etree.SubElement(body, f"{{{FEV1}}}{operation}Response", nsmap={None: FEV1})
    build(response, [(f"{operation}Result", result)], FEV1)
    return serialize(env)


def soap_fault(code: str, message: str, *, detail: Sequence[Node] = (),
               code_ns: tuple[str, str] | None = None) -> bytes:
    """A SOAP 1.1 Fault. ``code_ns`` (prefix, uri) declares the namespace of a qualified code."""
    env, body = _envelope()
    fault = etree.SubElement(body, f"{{{SOAP_ENV}}}Fault")
    faultcode = etree.SubElement(fault, "faultcode",
                                 nsmap={code_ns[0]: code_ns[1]} if code_ns else None)
    faultcode.text = code
    etree.SubElement(fault, "faultstring").text = message
    if detail:
        det = etree.SubElement(fault, "detail")
        for name, value in detail:
            el = etree.SubElement(det, f"{{{AXIS}}}{name}", nsmap={"ns2": AXIS})
            el.text = _fmt(value) if isinstance(value, (str, int, Decimal)) else None
    return serialize(env)


def wsaa_fault(code: str, message: str) -> bytes:
    """An Axis fault as WSAA sends it: ``ns1:<code>`` and the LoginFault exception name."""
    return soap_fault(f"ns1:{code}", message, code_ns=("ns1", AXIS), detail=[
        ("exceptionName", "gov.afip.desein.dvadac.sua.view.wsaa.LoginFault"),
        ("hostname", "wsaa-simulator.stalela"),
    ])


def wsaa_response(login_ticket_response: str) -> bytes:
    """``loginCmsResponse{loginCmsReturn}``: the ticket XML as a string, so it arrives escaped."""
    env, body = _envelope()
    response = etree.SubElement(body, f"{{{WSAA_RESPONSE_NS}}}loginCmsResponse",
                                nsmap={None: WSAA_RESPONSE_NS})
    etree.SubElement(response, f"{{{WSAA_RESPONSE_NS}}}loginCmsReturn").text = \
        login_ticket_response
    return serialize(env)


def to_string(root: etree._Element) -> str:
    return etree.tostring(root, encoding="unicode")
