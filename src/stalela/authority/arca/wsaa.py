"""WSAA's ``loginCms``: a signed TRA in, a ticket (token + sign, 12 h) out (reference §1).

The answer, ``loginCmsReturn``, is a string holding the escaped ``loginTicketResponse`` document; its
token is base64 of an ``<sso>`` document whose ``relations`` list the CUITs the certificate may act
for. Faults are sorted by what the caller must do (``errors``); the cache that makes one login per
12 h per tenant and service is ``service.get_ticket``'s, not this module's.
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import datetime, timezone

import anyio
import httpx
from lxml import etree

from stalela.authority.arca import soap
from stalela.authority.arca.cms import Signer, login_request
from stalela.authority.arca.errors import AlreadyAuthenticated, CertificateRejected, Transient

NS = "http://wsaa.view.sua.dvadac.desein.afip.gov"
HOMOLOGATION_URL = "https://wsaahomo.afip.gov.ar/ws/services/LoginCms"
PRODUCTION_URL = "https://wsaa.afip.gov.ar/ws/services/LoginCms"

# WSAA's fault codes (its specification's table) that say "try again later"; every other one, apart
# from coe.alreadyAuthenticated, needs someone to act (certificate, association, this host's clock).
_TRANSIENT_FAULTS = frozenset({"wsaa.unavailable", "wsaa.internalError", "wsn.unavailable"})
# Some deployments answer only with a Spanish faultstring (reference §1.5).
_ALREADY = ("alreadyauthenticated", "ya posee un ta valido")


@dataclass(frozen=True)
class Ticket:
    """A WSAA access ticket (TA). ``cuits``: whom the certificate may represent (the sso's relations)."""

    token: str
    sign: str
    expires_at: datetime
    generated_at: datetime | None = None
    cuits: tuple[str, ...] = field(default=())

    def valid_for(self, now: datetime) -> float:
        """Seconds of validity left at ``now`` (negative once expired)."""
        return (self.expires_at - now).total_seconds()


def login_envelope(cms_der: bytes) -> bytes:
    body = etree.Element(f"{{{NS}}}loginCms", nsmap={"wsaa": NS})
    etree.SubElement(body, f"{{{NS}}}in0").text = base64.b64encode(cms_der).decode("ascii")
    return soap.envelope(body)


def _datetime(value: str | None, what: str) -> datetime:
    try:
        moment = datetime.fromisoformat((value or "").strip())
    except ValueError:
        raise Transient(f"WSAA answered an unreadable {what}: {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def sso_cuits(token: str) -> tuple[str, ...]:
    """The CUITs in the token's ``relations`` (empty if the token is not the documented sso)."""
    try:
        root = soap.parse_xml(base64.b64decode(token, validate=True))
    except (binascii.Error, ValueError):
        return ()
    relations = soap.find(root, "relations")
    if relations is None:
        return ()
    return tuple(r.get("key") for r in soap.children(relations, "relation") if r.get("key"))


def parse_login_return(body: etree._Element) -> Ticket:
    """``loginCmsResponse`` -> Ticket; ``Transient`` for anything malformed."""
    returned = soap.find(body, "loginCmsReturn")
    if returned is None or not (returned.text or "").strip():
        raise Transient("WSAA answered without loginCmsReturn")
    try:
        response = soap.parse_xml(returned.text.strip())
    except soap.MalformedXml as exc:
        raise Transient(f"WSAA's loginCmsReturn is not XML: {exc}") from None
    header, credentials = soap.child(response, "header"), soap.child(response, "credentials")
    token, sign = soap.text(credentials, "token"), soap.text(credentials, "sign")
    if not token or not sign or header is None:
        raise Transient("WSAA's ticket lacks its token, sign or header")
    generated = soap.text(header, "generationTime")
    return Ticket(token=token, sign=sign, expires_at=_datetime(soap.text(header, "expirationTime"), "expirationTime"),
                  generated_at=_datetime(generated, "generationTime") if generated else None,
                  cuits=sso_cuits(token))


def classify_fault(fault: soap.Fault) -> Exception:
    lowered = f"{fault.code} {fault.message}".lower()
    if any(marker in lowered for marker in _ALREADY):
        return AlreadyAuthenticated(str(fault))
    if fault.code in _TRANSIENT_FAULTS:
        return Transient(str(fault))
    return CertificateRejected(fault.code or "fault", fault.message)


async def login_cms(url: str, signer: Signer, service: str = "wsfe", *, timeout: float = 20.0,
                    allow_private: bool = False, client: httpx.AsyncClient | None = None) -> Ticket:
    """One loginCms call. Raises ``AlreadyAuthenticated``, ``CertificateRejected`` or ``Transient``."""
    # In a thread: an HSM signature is a blocking PKCS#11 call (and a software one costs a millisecond).
    payload = login_envelope(await anyio.to_thread.run_sync(login_request, service, signer))
    try:
        body = await soap.call(url, "", payload, timeout=timeout, allow_private=allow_private,
                               operation="loginCms", client=client)
    except soap.Fault as fault:
        raise classify_fault(fault) from None
    return parse_login_return(body)
