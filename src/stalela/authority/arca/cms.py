"""The WSAA login request: the TRA (loginTicketRequest) signed as an attached CMS SignedData.

The equivalent of ``openssl smime -sign -signer cert -inkey key -outform DER -nodetach -md sha256``
(reference §1.3), built with asn1crypto so that the signature itself can come from anywhere: a
software RSA key (``SoftwareSigner``) or a key that never leaves the PKCS#11 token (``HsmSigner``).
Either way the signer is asked for one thing only: RSA PKCS#1 v1.5 with SHA-256 over the DER of
the signed attributes (CMS, RFC 5652 §5.4: content type, signing time and the content's digest).
"""
from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Protocol
from zoneinfo import ZoneInfo

from asn1crypto import algos, cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree

# ARCA's clock and examples are Buenos Aires time; any offset is valid xsd:dateTime, but the sandbox
# has been reported to refuse some forms (reference §1.2): we send ISO 8601 with the local offset.
ARGENTINA = ZoneInfo("America/Argentina/Buenos_Aires")
# A short window around now absorbs modest clock skew in both directions; WSAA caps the ticket at 12 h
# whatever the TRA asks, so a longer window would buy nothing.
TRA_WINDOW = timedelta(minutes=10)


class Signer(Protocol):
    """Signs with the certificate's private key: RSA PKCS#1 v1.5, SHA-256 (the signer hashes)."""

    certificate: x509.Certificate

    def sign(self, data: bytes) -> bytes: ...


class SoftwareSigner:
    def __init__(self, certificate: x509.Certificate, private_key: rsa.RSAPrivateKey) -> None:
        self.certificate, self._key = certificate, private_key

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data, padding.PKCS1v15(), hashes.SHA256())


class HsmSigner:
    """``sign_sha256_rsa(label, data)`` is the PKCS#11 backend's (CKM_SHA256_RSA_PKCS inside the token)."""

    def __init__(self, certificate: x509.Certificate, label: str,
                 sign_sha256_rsa: Callable[[str, bytes], bytes]) -> None:
        self.certificate, self.label, self._sign = certificate, label, sign_sha256_rsa

    def sign(self, data: bytes) -> bytes:
        return self._sign(self.label, data)


def xsd_datetime(moment: datetime) -> str:
    return moment.astimezone(ARGENTINA).isoformat(timespec="seconds")


def build_tra(service: str, *, now: datetime | None = None, unique_id: int | None = None) -> bytes:
    """The loginTicketRequest of reference §1.2 (no source/destination: WSAA takes them from the signature)."""
    now = now or datetime.now(timezone.utc)
    root = etree.Element("loginTicketRequest", version="1.0")
    header = etree.SubElement(root, "header")
    # A 32-bit id, random rather than the time: two processes asking in the same second must differ.
    etree.SubElement(header, "uniqueId").text = str(unique_id if unique_id is not None else secrets.randbelow(2**31))
    etree.SubElement(header, "generationTime").text = xsd_datetime(now - TRA_WINDOW)
    etree.SubElement(header, "expirationTime").text = xsd_datetime(now + TRA_WINDOW)
    etree.SubElement(root, "service").text = service
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _signed_attributes(content: bytes, now: datetime) -> cms.CMSAttributes:
    attributes = [
        cms.CMSAttribute({"type": "content_type", "values": ["data"]}),
        cms.CMSAttribute({"type": "signing_time", "values": [cms.Time({"utc_time": now})]}),
        cms.CMSAttribute({"type": "message_digest", "values": [hashlib.sha256(content).digest()]}),
    ]
    # DER wants a SET OF sorted by encoding; verifiers re-encode the set before checking the signature,
    # so an unsorted one would fail verification there even though we signed what we sent.
    return cms.CMSAttributes(sorted(attributes, key=lambda a: a.dump()))


def sign_cms(content: bytes, signer: Signer, *, now: datetime | None = None) -> bytes:
    """An attached CMS SignedData (DER) of ``content``: SHA-256, the signer's certificate included."""
    now = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    certificate = asn1_x509.Certificate.load(signer.certificate.public_bytes(serialization.Encoding.DER))
    signed_attrs = _signed_attributes(content, now)
    # Signed as a universal SET (tag 0x31), sent as [0] IMPLICIT inside SignerInfo (RFC 5652 §5.4).
    signature = signer.sign(signed_attrs.dump())
    sha256 = algos.DigestAlgorithm({"algorithm": "sha256"})
    signer_info = cms.SignerInfo({
        "version": "v1",
        "sid": cms.SignerIdentifier({"issuer_and_serial_number": cms.IssuerAndSerialNumber({
            "issuer": certificate.issuer, "serial_number": certificate.serial_number})}),
        "digest_algorithm": sha256,
        "signed_attrs": signed_attrs,
        "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": "sha256_rsa"}),
        "signature": signature,
    })
    signed_data = cms.SignedData({
        "version": "v1",
        "digest_algorithms": [sha256],
        "encap_content_info": {"content_type": "data", "content": content},
        "certificates": [certificate],
        "signer_infos": [signer_info],
    })
    return cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump()


def login_request(service: str, signer: Signer, *, now: datetime | None = None) -> bytes:
    """The DER that ``loginCms`` takes (base64-encoded) for ``service`` (``wsfe``...)."""
    return sign_cms(build_tra(service, now=now), signer, now=now)
