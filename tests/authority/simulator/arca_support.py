"""Helpers for the ARCA simulator tests: certificates, TRA and CMS, hand-written SOAP envelopes.

Everything here is built without the simulator's own code (and without Stalela's ARCA client):
keys and certificates with cryptography, CMS with PKCS7SignatureBuilder or the openssl CLI,
envelopes as literal XML strings, answers read with lxml.
"""
from __future__ import annotations

import base64
import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID
from lxml import etree

CUIT = "20267565393"
OTHER_CUIT = "30000000007"
AR = timezone(timedelta(hours=-3))
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
FEV1 = "http://ar.gov.afip.dif.FEV1/"


# ------------------------------------------------------------------------ keys and certificates


@dataclass
class Identity:
    key: object
    cert: x509.Certificate

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())


def make_identity(cuit: str | None = CUIT, *, issuer: Identity | None = None,
                  not_before: datetime | None = None, days: int = 365, ec_key: bool = False,
                  ca: bool = False, cn: str = "stalela-test") -> Identity:
    key = ec.generate_private_key(ec.SECP256R1()) if ec_key else \
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Stalela Test"),
             x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if cuit is not None:
        attrs.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, f"CUIT {cuit}"))
    subject = x509.Name(attrs)
    start = not_before or datetime.now(timezone.utc) - timedelta(days=1)
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(issuer.cert.subject if issuer else subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(start + timedelta(days=days)))
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    cert = builder.sign(issuer.key if issuer else key, hashes.SHA256())
    return Identity(key, cert)


# --------------------------------------------------------------------------------- TRA and CMS


def tra(service: str = "wsfe", *, generation: datetime | None = None,
        expiration: datetime | None = None, unique_id: int = 1624096455,
        now: datetime | None = None) -> bytes:
    """A TRA valid from 10 minutes before ``now`` (default: the real clock) to 10 after."""
    now = (now or datetime.now(AR)).replace(microsecond=0)
    gen = generation or now - timedelta(minutes=10)
    exp = expiration or now + timedelta(minutes=10)
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<loginTicketRequest version="1.0">'
            f"<header><uniqueId>{unique_id}</uniqueId>"
            f"<generationTime>{gen.isoformat()}</generationTime>"
            f"<expirationTime>{exp.isoformat()}</expirationTime></header>"
            f"<service>{service}</service></loginTicketRequest>").encode()


def sign_cms(content: bytes, who: Identity, *, detached: bool = False) -> bytes:
    """What django-afip sends: PKCS7SignatureBuilder, SHA-256, DER, attached."""
    options = [pkcs7.PKCS7Options.Binary]
    if detached:
        options.append(pkcs7.PKCS7Options.DetachedSignature)
    return (pkcs7.PKCS7SignatureBuilder().set_data(content)
            .add_signer(who.cert, who.key, hashes.SHA256())
            .sign(serialization.Encoding.DER, options))


def sign_openssl(content: bytes, who: Identity, tmp: Path) -> bytes:
    """``openssl cms -sign -nodetach -outform DER``, the way ARCA's manual does it."""
    (tmp / "cert.pem").write_bytes(who.cert_pem)
    (tmp / "key.pem").write_bytes(who.key_pem)
    (tmp / "tra.xml").write_bytes(content)
    subprocess.run(["openssl", "cms", "-sign", "-nodetach", "-binary", "-md", "sha256",
                    "-in", str(tmp / "tra.xml"), "-signer", str(tmp / "cert.pem"),
                    "-inkey", str(tmp / "key.pem"), "-outform", "DER",
                    "-out", str(tmp / "tra.cms")], check=True, capture_output=True)
    return (tmp / "tra.cms").read_bytes()


def login_envelope(cms_der: bytes | str) -> bytes:
    b64 = cms_der if isinstance(cms_der, str) else base64.b64encode(cms_der).decode()
    return (f'<soapenv:Envelope xmlns:soapenv="{SOAP}" '
            f'xmlns:wsaa="http://wsaa.view.sua.dvadac.desein.afip.gov">'
            f"<soapenv:Header/><soapenv:Body><wsaa:loginCms><wsaa:in0>{b64}</wsaa:in0>"
            f"</wsaa:loginCms></soapenv:Body></soapenv:Envelope>").encode()


# ----------------------------------------------------------------------------------- reading


def xml(data: bytes) -> etree._Element:
    return etree.fromstring(data)


def find(root: etree._Element, path: str) -> etree._Element | None:
    """First element along a '/'-separated path of local names, anywhere under ``root``."""
    steps = "/".join(f"*[local-name()='{s}']" for s in path.split("/"))
    found = root.xpath(f".//{steps}")
    return found[0] if found else None


def val(root: etree._Element, path: str) -> str | None:
    el = find(root, path)
    return None if el is None else (el.text or "")


def fault(response: httpx.Response) -> tuple[str, str]:
    root = xml(response.content)
    return val(root, "Fault/faultcode"), val(root, "Fault/faultstring")


# ----------------------------------------------------------------------------------- WSFEv1


def today() -> datetime:
    return datetime.now(AR)


def ymd(days: int = 0) -> str:
    return (today() + timedelta(days=days)).strftime("%Y%m%d")


def receipt(number: int, **over: object) -> str:
    """A FECAEDetRequest: by default a Factura B for 100.00 + 21 % to a consumidor final.

    An override of None leaves the element out; ``iva``/``asoc``/``tributos`` take inner XML.
    """
    fields: dict[str, object] = {
        "Concepto": 1, "DocTipo": 99, "DocNro": 0, "CbteDesde": number, "CbteHasta": number,
        "CbteFch": ymd(), "ImpTotal": "121.00", "ImpTotConc": "0.00", "ImpNeto": "100.00",
        "ImpOpEx": "0.00", "ImpTrib": "0.00", "ImpIVA": "21.00", "FchServDesde": None,
        "FchServHasta": None, "FchVtoPago": None, "MonId": "PES", "MonCotiz": "1",
        "CbtesAsoc": None, "Tributos": None,
        "Iva": "<AlicIva><Id>5</Id><BaseImp>100.00</BaseImp><Importe>21.00</Importe></AlicIva>",
        "CondicionIVAReceptorId": 5,
    }
    unknown = set(over) - set(fields)
    assert not unknown, unknown
    fields.update(over)
    body = "".join(f"<{k}>{v}</{k}>" for k, v in fields.items() if v is not None)
    return f"<FECAEDetRequest>{body}</FECAEDetRequest>"


def alic(iva_id: int, base: str, amount: str) -> str:
    return f"<AlicIva><Id>{iva_id}</Id><BaseImp>{base}</BaseImp><Importe>{amount}</Importe></AlicIva>"


class Wsfe:
    """Hand-written WSFEv1 calls over a real HTTP connection."""

    def __init__(self, base_url: str, token: str = "", sign: str = "", cuit: str = CUIT,
                 timeout: float = 10) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=timeout)
        self.token, self.sign, self.cuit = token, sign, cuit

    def close(self) -> None:
        self.http.close()

    def auth(self, cuit: str | None = None) -> str:
        return (f"<Auth><Token>{self.token}</Token><Sign>{self.sign}</Sign>"
                f"<Cuit>{cuit or self.cuit}</Cuit></Auth>")

    def post(self, op: str, inner: str, *, action: str | None = "default",
             timeout: float | None = None) -> httpx.Response:
        envelope = (f'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{SOAP}">'
                    f'<soap:Body><{op} xmlns="{FEV1}">{inner}</{op}></soap:Body></soap:Envelope>')
        headers = {"Content-Type": "text/xml; charset=utf-8"}
        if action == "default":
            headers["SOAPAction"] = f'"{FEV1}{op}"'
        elif action is not None:
            headers["SOAPAction"] = action
        kwargs = {"timeout": timeout} if timeout is not None else {}
        return self.http.post("/wsfev1/service.asmx", content=envelope.encode(), headers=headers,
                              **kwargs)

    def call(self, op: str, inner: str = "", **kw: object) -> etree._Element:
        r = self.post(op, inner, **kw)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/xml")
        return find(xml(r.content), f"{op}Result")

    def last(self, pos: int = 3, cbte_type: int = 6, cuit: str | None = None) -> etree._Element:
        return self.call("FECompUltimoAutorizado",
                         f"{self.auth(cuit)}<PtoVta>{pos}</PtoVta><CbteTipo>{cbte_type}</CbteTipo>")

    def solicitar(self, *receipts: str, pos: int = 3, cbte_type: int = 6,
                  cant: int | None = None, **kw: object) -> etree._Element:
        cab = (f"<FeCabReq><CantReg>{len(receipts) if cant is None else cant}</CantReg>"
               f"<PtoVta>{pos}</PtoVta><CbteTipo>{cbte_type}</CbteTipo></FeCabReq>")
        inner = f"{self.auth()}<FeCAEReq>{cab}<FeDetReq>{''.join(receipts)}</FeDetReq></FeCAEReq>"
        return self.call("FECAESolicitar", inner, **kw)

    def consultar(self, number: int, pos: int = 3, cbte_type: int = 6) -> etree._Element:
        return self.call("FECompConsultar",
                         f"{self.auth()}<FeCompConsReq><CbteTipo>{cbte_type}</CbteTipo>"
                         f"<CbteNro>{number}</CbteNro><PtoVta>{pos}</PtoVta></FeCompConsReq>")


def errors(result: etree._Element) -> list[int]:
    return [int(c.text) for c in result.xpath(".//*[local-name()='Err']/*[local-name()='Code']")]


def observations(result: etree._Element) -> list[int]:
    return [int(c.text) for c in result.xpath(".//*[local-name()='Obs']/*[local-name()='Code']")]


def login(base_url: str, who: Identity, content: bytes | None = None) -> tuple[str, str]:
    """loginCms over HTTP: (token, sign) of the ticket, asserting it was granted."""
    r = httpx.post(base_url + "/ws/services/LoginCms",
                   content=login_envelope(sign_cms(content or tra(), who)),
                   headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'})
    assert r.status_code == 200, r.text
    ticket = xml(val(xml(r.content), "loginCmsResponse/loginCmsReturn").encode())
    return val(ticket, "credentials/token"), val(ticket, "credentials/sign")
