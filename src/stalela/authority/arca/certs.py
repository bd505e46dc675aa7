"""ARCA certificates: what an uploaded certificate and key must be, and the CSR for a key in the HSM.

ARCA issues the certificate (portal "Administración de Certificados Digitales", or WSASS for
homologation) for a CSR whose subject is ``O=<company>, CN=<alias>, serialNumber=CUIT <11 digits>``
(reference §1.3). The CUIT in serialNumber is whom the certificate represents; it must be the
tenant's ``tax_id`` or every WSFEv1 call would fail with Err 601 later, far from the cause.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import csr as asn1_csr
from asn1crypto import keys as asn1_keys
from asn1crypto import pem as asn1_pem
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from stalela.errors import FieldError, ValidationFailed

_CUIT = re.compile(r"^CUIT\s*(\d{11})$")
MIN_RSA_BITS = 2048


def _refuse(field: str, code: str, detail: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {detail}", code=code, field=field, errors=[FieldError(field, code, detail)])


@dataclass(frozen=True)
class CertificateInfo:
    subject: str
    cuit: str | None
    not_before: datetime
    not_after: datetime


def load_certificate(pem: str) -> x509.Certificate:
    try:
        certificates = x509.load_pem_x509_certificates(pem.encode("utf-8"))
    except (ValueError, UnicodeEncodeError):
        raise _refuse("certificate", "certificate_invalid", "not a PEM X.509 certificate") from None
    if len(certificates) != 1:
        raise _refuse("certificate", "certificate_invalid", "exactly one certificate is expected")
    certificate = certificates[0]
    try:  # cryptography parses lazily: a malformed name or key surfaces only when read
        public_key = certificate.public_key()
        info(certificate)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise _refuse("certificate", "certificate_invalid", "the certificate cannot be read") from None
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise _refuse("certificate", "certificate_invalid", "ARCA certificates carry an RSA key")
    return certificate


def load_private_key(pem: str) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(pem.encode("utf-8"), password=None)
    except TypeError:
        raise _refuse("private_key", "private_key_invalid",
                      "the key is encrypted: send it unencrypted (it is stored encrypted)") from None
    except (ValueError, UnicodeEncodeError):
        raise _refuse("private_key", "private_key_invalid", "not a PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise _refuse("private_key", "private_key_invalid", "ARCA certificates need an RSA key")
    if key.key_size < MIN_RSA_BITS:
        raise _refuse("private_key", "private_key_invalid", f"an RSA key of at least {MIN_RSA_BITS} bits is needed")
    return key


def cuit_of(certificate: x509.Certificate) -> str | None:
    for attribute in certificate.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER):
        match = _CUIT.match(str(attribute.value).strip())
        if match:
            return match.group(1)
    return None


def info(certificate: x509.Certificate) -> CertificateInfo:
    subject = certificate.subject.rfc4514_string({NameOID.SERIAL_NUMBER: "serialNumber"})
    return CertificateInfo(subject=subject, cuit=cuit_of(certificate),
                           not_before=certificate.not_valid_before_utc, not_after=certificate.not_valid_after_utc)


def same_public_key(certificate: x509.Certificate, public_key: rsa.RSAPublicKey) -> bool:
    return certificate.public_key().public_numbers() == public_key.public_numbers()


def check_certificate(certificate: x509.Certificate, *, tax_id: str, now: datetime) -> CertificateInfo:
    """The certificate represents the tenant and is valid now; each failure a 422 on ``certificate``."""
    found = info(certificate)
    if found.cuit is None:
        raise _refuse("certificate", "certificate_cuit_missing",
                      "the subject has no serialNumber=CUIT <11 digits>: not an ARCA certificate")
    if found.cuit != tax_id:
        raise _refuse("certificate", "certificate_cuit_mismatch",
                      f"the certificate is for CUIT {found.cuit}, the tenant's is {tax_id}")
    if found.not_after <= now:
        raise _refuse("certificate", "certificate_expired", f"the certificate expired at {found.not_after.isoformat()}")
    if found.not_before > now:
        raise _refuse("certificate", "certificate_not_yet_valid",
                      f"the certificate is valid from {found.not_before.isoformat()}")
    return found


def build_csr(public_key: rsa.RSAPublicKey, sign: Callable[[bytes], bytes], *, organization: str, alias: str,
              cuit: str) -> str:
    """A PKCS#10 request, PEM, signed by ``sign`` (RSA PKCS#1 v1.5 over SHA-256): the key may be in an HSM."""
    spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    # The attributes of reference §1.3 (asn1crypto orders the RDNs its own way; ARCA reads them by type).
    subject = asn1_x509.Name.build({"organization_name": organization, "common_name": alias,
                                    "serial_number": f"CUIT {cuit}"})
    request_info = asn1_csr.CertificationRequestInfo({
        "version": "v1", "subject": subject, "subject_pk_info": asn1_keys.PublicKeyInfo.load(spki),
        "attributes": [],
    })
    request = asn1_csr.CertificationRequest({
        "certification_request_info": request_info,
        "signature_algorithm": {"algorithm": "sha256_rsa"},
        "signature": sign(request_info.dump()),
    })
    return asn1_pem.armor("CERTIFICATE REQUEST", request.dump()).decode("ascii")
