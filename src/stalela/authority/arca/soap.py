"""SOAP 1.1 for ARCA, by hand with lxml: envelopes out, a safe parser in, one HTTP call through the guard.

Why not zeep: zeep builds its client from the service's WSDL. ARCA's WSDLs cannot be fetched here
(no network at build or test time, and fetching them at start-up would make ARCA's availability ours)
nor shipped verbatim (their licence is unstated, and the recorded copies predate RG 5616's fields, so
they would be edited copies anyway). We call five operations (loginCms and four of WSFEv1) whose
shapes are documented (docs/jurisdictions/ar-operations.md, reference §1.1, §2.2, §2.4); building
those few elements by hand is shorter than a WSDL, keeps every byte sent visible in a golden test,
and lets the calls be async httpx through our outbound guard (zeep's transport is requests, sync).

Answers are untrusted input (a tenant may point ``custom`` URLs anywhere its policy allows): they are
parsed without entity expansion, DTDs or network access, with lxml's size limits on, and a document
type declaration is refused outright (no SOAP answer has one).
"""
from __future__ import annotations

import asyncio
import ssl
import weakref
from urllib.parse import urlsplit

import anyio
import httpx
from lxml import etree

from stalela.authority.arca.errors import Transient
from stalela.kit.netguard import guarded_client
from stalela.observability.metrics import authority_request

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
MAX_ANSWER_BYTES = 2 * 1024 * 1024  # the largest real answer (a WSDL) is ~70 KB; an answer is far less

# ARCA's own hosts (reference §1.1, §2.1). They have failed TLS with DH_KEY_TOO_SMALL on OpenSSL's
# default security level since 2020 (reference §1.6): for these names only, a context at level 1
# (certificates and host names still verified). Every other URL, simulators included, gets the default.
ARCA_HOSTS = frozenset({"wsaa.afip.gov.ar", "wsaahomo.afip.gov.ar", "servicios1.afip.gov.ar",
                        "wswhomo.afip.gov.ar"})

_PARSER_OPTIONS = dict(resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False,
                       dtd_validation=False, remove_comments=True, remove_pis=True)


class MalformedXml(ValueError):
    pass


def parse_xml(data: bytes | str) -> etree._Element:
    """Parse an untrusted XML document; ``MalformedXml`` for anything but a plain document."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if len(data) > MAX_ANSWER_BYTES:
        raise MalformedXml("the document is too large")
    parser = etree.XMLParser(**_PARSER_OPTIONS)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise MalformedXml(f"not well-formed XML: {exc}") from None
    if root is None:
        raise MalformedXml("empty document")
    if root.getroottree().docinfo.doctype:
        raise MalformedXml("a document type declaration is not accepted")
    return root


def local(element: etree._Element) -> str:
    return etree.QName(element).localname


def child(parent: etree._Element | None, name: str) -> etree._Element | None:
    """The first direct child called ``name`` (whatever its namespace: ARCA's vary by host and version)."""
    if parent is None:
        return None
    for element in parent:
        if isinstance(element.tag, str) and local(element) == name:
            return element
    return None


def children(parent: etree._Element | None, name: str) -> list[etree._Element]:
    if parent is None:
        return []
    return [e for e in parent if isinstance(e.tag, str) and local(e) == name]


def text(parent: etree._Element | None, name: str) -> str | None:
    found = child(parent, name)
    if found is None:
        return None
    return (found.text or "").strip()


def find(root: etree._Element, name: str) -> etree._Element | None:
    """The first descendant called ``name``, any namespace."""
    for element in root.iter():
        if isinstance(element.tag, str) and local(element) == name:
            return element
    return None


def envelope(body: etree._Element) -> bytes:
    env = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"soap": SOAP_ENV})
    etree.SubElement(env, f"{{{SOAP_ENV}}}Header")
    etree.SubElement(env, f"{{{SOAP_ENV}}}Body").append(body)
    return etree.tostring(env, xml_declaration=True, encoding="utf-8")


class Fault(Exception):
    """A SOAP fault: ``code`` is the faultcode's local part (``coe.alreadyAuthenticated``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


def body_of(root: etree._Element) -> etree._Element:
    """The Body's first element, or raise the Fault it holds."""
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        raise MalformedXml("not a SOAP 1.1 envelope")
    body = child(root, "Body")
    first = next((e for e in body if isinstance(e.tag, str)), None) if body is not None else None
    if first is None:
        raise MalformedXml("the SOAP body is empty")
    if local(first) == "Fault":
        code = text(first, "faultcode") or ""
        raise Fault(code.rsplit(":", 1)[-1], text(first, "faultstring") or "")
    return first


async def call(url: str, action: str, payload: bytes, *, timeout: float, allow_private: bool,
               operation: str, client: httpx.AsyncClient | None = None) -> etree._Element:
    """POST one envelope; the answer's Body element. ``Fault`` for a SOAP fault (SOAP 1.1 sends them with
    HTTP 500), ``Transient`` for everything that says nothing about the request (no answer, 5xx without
    a fault, a body that is not a SOAP envelope)."""
    http = client or _shared_client(allow_private, urlsplit(url).hostname or "")
    headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{action}"'}
    limits = httpx.Timeout(timeout, connect=min(timeout, 5.0))
    try:
        with authority_request("POST", url, f"arca:{operation}") as metric:
            # httpx's timeout bounds each read, not the exchange: an answer trickling in could outlast
            # the agent's claim. The whole call gets the timeout plus the connect limit.
            with anyio.fail_after(timeout + limits.connect):
                response = await http.post(url, content=payload, headers=headers, timeout=limits)
            metric.done(response.status_code)
    except httpx.HTTPError as exc:  # timeouts, refused or dropped connections, the guard's refusals
        raise Transient(f"{type(exc).__name__}: {exc}") from exc
    except TimeoutError as exc:
        raise Transient(f"ARCA's answer took longer than {timeout + limits.connect:.0f} s") from exc
    try:
        root = parse_xml(response.content)
    except MalformedXml as exc:
        raise Transient(f"ARCA answered HTTP {response.status_code} without a SOAP envelope ({exc})") from None
    try:
        body = body_of(root)
    except MalformedXml as exc:
        raise Transient(f"ARCA answered HTTP {response.status_code}: {exc}") from None
    if response.status_code >= 400:
        raise Transient(f"ARCA answered HTTP {response.status_code} with a non-fault body")
    return body


_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict]" = weakref.WeakKeyDictionary()


def arca_ssl_context() -> ssl.SSLContext:
    context = httpx.create_ssl_context()
    context.set_ciphers("DEFAULT@SECLEVEL=1")
    return context


def _shared_client(allow_private: bool, host: str) -> httpx.AsyncClient:
    """One pool per event loop, guard mode and TLS policy (ARCA's hosts, or the default)."""
    legacy_tls = host.rstrip(".").lower() in ARCA_HOSTS
    per_loop = _clients.setdefault(asyncio.get_running_loop(), {})
    client = per_loop.get((allow_private, legacy_tls))
    if client is None or client.is_closed:
        client = guarded_client(allow_private, limits=httpx.Limits(max_connections=50, max_keepalive_connections=10),
                                ssl_context=arca_ssl_context() if legacy_tls else None)
        per_loop[(allow_private, legacy_tls)] = client
    return client
