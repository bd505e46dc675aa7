"""Verifying what loginCms receives: an attached CMS SignedData around a TRA.

cryptography can build PKCS#7 but not verify it, so the structure is read with asn1crypto and
each step checked by hand (reference §4.4): the signer certificate is the one inside the CMS
named by the SignerInfo's sid; the ``message-digest`` signed attribute must equal the hash of
the encapsulated content; the signature covers the DER of the signed attributes re-tagged as a
SET (RFC 5652 §5.4), or the content itself when there are no signed attributes.
"""
from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from asn1crypto import cms as acms
from asn1crypto import core
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from .soap import SoapError, child, parse_xml, text

ARGENTINA = timezone(timedelta(hours=-3))  # no DST since 2009: a fixed offset needs no tzdata
HASHES = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}
CUIT_RE = re.compile(r"^CUIT\s*(\d{11})$")
MAX_UNIQUE_ID = 2**32 - 1
# The simulator's reading of the TRA window (ARCA does not publish it; reference §1.2, §5):
FUTURE_SKEW = timedelta(minutes=10)  # generationTime may be this far ahead of our clock
MAX_AGE = timedelta(hours=24)  # ... and this far behind it
MAX_TTL = timedelta(hours=24)  # expirationTime - generationTime


class WsaaFault(Exception):
    """A LoginFault: ``code`` without the ``ns1:`` prefix, and its message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


def bad_cms(why: str) -> WsaaFault:
    return WsaaFault("cms.bad", f"El CMS no es valido: {why}")


@dataclass(frozen=True)
class SignedTra:
    content: bytes  # the TRA as signed
    certificate: x509.Certificate
    certificate_der: bytes

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.certificate_der).hexdigest()


@dataclass(frozen=True)
class Tra:
    unique_id: int
    generation: datetime
    expiration: datetime
    service: str


def _signed_attrs_present(attrs: object) -> bool:
    return not isinstance(attrs, core.Void) and len(attrs) > 0  # type: ignore[arg-type]


def _find_signer(signed_data: acms.SignedData, sid: acms.SignerIdentifier) -> acms.Certificate:
    certs = [c.chosen for c in signed_data["certificates"] or [] if c.name == "certificate"]
    for cert in certs:
        if sid.name == "issuer_and_serial_number":
            isn = sid.chosen
            if cert.issuer == isn["issuer"] and cert.serial_number == isn["serial_number"].native:
                return cert
        elif cert.key_identifier is not None and cert.key_identifier == sid.chosen.native:
            return cert
    raise bad_cms("el certificado firmante no esta incluido en el CMS")


def _verify_signature(public_key: object, signature: bytes, data: bytes, hash_name: str,
                      algorithm: acms.SignedDigestAlgorithm) -> None:
    algo = algorithm.signature_algo
    chosen = HASHES[hash_name]()
    if isinstance(public_key, rsa.RSAPublicKey) and algo == "rsassa_pkcs1v15":
        public_key.verify(signature, data, padding.PKCS1v15(), chosen)
    elif isinstance(public_key, rsa.RSAPublicKey) and algo == "rsassa_pss":
        params = algorithm["parameters"]
        mgf_hash = params["mask_gen_algorithm"]["parameters"]["algorithm"].native
        if mgf_hash not in HASHES:
            raise InvalidSignature()
        public_key.verify(signature, data,
                          padding.PSS(padding.MGF1(HASHES[mgf_hash]()),
                                      params["salt_length"].native), chosen)
    elif isinstance(public_key, ec.EllipticCurvePublicKey) and algo == "ecdsa":
        public_key.verify(signature, data, ec.ECDSA(chosen))
    else:
        raise InvalidSignature()


def verify_cms(der: bytes) -> SignedTra:
    """The content and signer of a valid attached SignedData; WsaaFault otherwise."""
    try:
        info = acms.ContentInfo.load(der)
        if info["content_type"].native != "signed_data":
            raise bad_cms("no es SignedData")
        signed: acms.SignedData = info["content"]
        encap = signed["encap_content_info"]
        if encap["content_type"].native != "data":
            raise bad_cms("el contenido no es de tipo data")
        content = encap["content"].native
        if not content:
            raise bad_cms("el CMS no incluye el TRA (firma separada)")
        signer_infos = list(signed["signer_infos"])
        if len(signer_infos) != 1:
            raise bad_cms(f"se esperaba un firmante, hay {len(signer_infos)}")
        signer = signer_infos[0]
        cert = _find_signer(signed, signer["sid"])
        hash_name = signer["digest_algorithm"]["algorithm"].native
        if hash_name not in HASHES:
            raise WsaaFault("cms.sign.invalid",
                            f"Firma inválida o algoritmo no soportado ({hash_name})")
        attrs = signer["signed_attrs"]
        if _signed_attrs_present(attrs):
            values = {a["type"].native: a["values"] for a in attrs}
            if "message_digest" not in values:
                raise bad_cms("falta el atributo firmado message-digest")
            digest = hashlib.new(hash_name, content).digest()
            if not hmac.compare_digest(values["message_digest"][0].native, digest):
                raise WsaaFault("cms.sign.invalid",
                                "Firma inválida o algoritmo no soportado (message-digest)")
            if "content_type" in values and values["content_type"][0].native != "data":
                raise bad_cms("el atributo content-type no es data")
            raw = attrs.dump()
            to_verify = b"\x31" + raw[1:]  # [0] IMPLICIT -> SET OF, as signed
        else:
            to_verify = content
        cert_der = cert.dump()
        certificate = x509.load_der_x509_certificate(cert_der)
        signature = signer["signature"].native
    except WsaaFault:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise bad_cms(f"no se pudo decodificar ({type(exc).__name__})") from None
    try:
        _verify_signature(certificate.public_key(), signature, to_verify, hash_name,
                          signer["signature_algorithm"])
    except (InvalidSignature, ValueError, TypeError, KeyError):
        raise WsaaFault("cms.sign.invalid", "Firma inválida o algoritmo no soportado") from None
    return SignedTra(content, certificate, cert_der)


def cuit_check_digit_ok(cuit: str) -> bool:
    weights = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
    rest = sum(int(d) * w for d, w in zip(cuit[:10], weights, strict=True)) % 11
    digit = 0 if rest == 0 else 11 - rest
    return digit != 10 and digit == int(cuit[10])


def certificate_cuit(certificate: x509.Certificate) -> str:
    """The CUIT of ``serialNumber=CUIT nnnnnnnnnnn`` in the subject (how ARCA issues them)."""
    for attr in certificate.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER):
        value = attr.value if isinstance(attr.value, str) else attr.value.decode()
        match = CUIT_RE.match(value.strip())
        if match and cuit_check_digit_ok(match.group(1)):
            return match.group(1)
    raise WsaaFault("cms.cert.invalid",
                    "El certificado no tiene un serialNumber=CUIT nnnnnnnnnnn valido en el subject")


def check_certificate(certificate: x509.Certificate, now: datetime,
                      ca: x509.Certificate | None) -> None:
    if certificate.not_valid_after_utc < now:
        raise WsaaFault("cms.cert.expired", "Certificado expirado")
    if certificate.not_valid_before_utc > now:
        raise WsaaFault("cms.cert.invalid", "Certificado con fecha de inicio posterior a la actual")
    if ca is not None:
        try:
            certificate.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            raise WsaaFault("cms.cert.untrusted",
                            "Certificado no emitido por AC de confianza") from None


def _time(value: str | None, which: str) -> datetime:
    code = f"xml.{which}.invalid"
    if value is None:
        raise WsaaFault(code, f"{which} posee formato o dato inválido")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise WsaaFault(code, f"{which} posee formato o dato inválido") from None
    # A time without an offset is read as Argentine local time (the simulator's reading).
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=ARGENTINA)


def parse_tra(content: bytes, now: datetime, services: frozenset[str]) -> Tra:
    try:
        root = parse_xml(content)
    except SoapError:
        raise WsaaFault("xml.bad", "No se ha podido interpretar el XML contra el SCHEMA") from None
    if root.tag != "loginTicketRequest":
        raise WsaaFault("xml.bad", "No se ha podido interpretar el XML contra el SCHEMA")
    if root.get("version", "1.0") != "1.0":
        raise WsaaFault("xml.version.notSupported", "La version del documento no es soportada")
    header = child(root, "header")
    unique = text(header, "uniqueId")
    if header is None or unique is None or not unique.isdigit() or int(unique) > MAX_UNIQUE_ID:
        raise WsaaFault("xml.bad", "No se ha podido interpretar el XML contra el SCHEMA")
    generation = _time(text(header, "generationTime"), "generationTime")
    expiration = _time(text(header, "expirationTime"), "expirationTime")
    if not now - MAX_AGE <= generation <= now + FUTURE_SKEW:
        raise WsaaFault("xml.generationTime.invalid", "generationTime posee formato o dato inválido")
    if expiration <= now:
        raise WsaaFault("xml.expirationTime.expired", "expirationTime posee fecha del pasado")
    if expiration <= generation or expiration - generation > MAX_TTL:
        raise WsaaFault("xml.expirationTime.invalid", "expirationTime posee formato o dato inválido")
    service = text(root, "service")
    if service is None or service not in services:
        raise WsaaFault("wsn.notFound", "Servicio informado inexistente")
    return Tra(int(unique), generation, expiration, service)
