"""ARCA client tests: certificates made on the spot, and a tiny SOAP server on loopback (never a mocked
httpx: the bytes go through a real socket, the outbound guard and lxml's parser)."""
from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.server import asgi_in_thread

FIXTURES = Path(__file__).parent / "fixtures"
CUIT = "20267565393"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def make_certificate(cuit: str = CUIT, *, key: rsa.RSAPrivateKey | None = None, public_key=None,
                     days: int = 365, not_before_days: int = -1) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """A certificate as ARCA issues them (subject O, CN, serialNumber=CUIT n), signed by a throwaway CA."""
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.now(timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Kiosco SRL"),
                         x509.NameAttribute(NameOID.COMMON_NAME, "stalela"),
                         x509.NameAttribute(NameOID.SERIAL_NUMBER, f"CUIT {cuit}")])
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Computadores Test"),
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "AFIP")])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(public_key or key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now + timedelta(days=not_before_days)).not_valid_after(now + timedelta(days=days))
            .sign(ca_key, hashes.SHA256()))
    return cert, key


def pem(obj) -> str:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM).decode()
    return obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption()).decode()


def soap_fault(code: str, message: str) -> str:
    return (f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}"><soapenv:Body><soapenv:Fault>'
            f'<faultcode xmlns:ns1="http://xml.apache.org/axis/">ns1:{code}</faultcode>'
            f"<faultstring>{message}</faultstring><detail/></soapenv:Fault></soapenv:Body></soapenv:Envelope>")


def login_answer(expires_at: datetime, *, token: str | None = None, cuit: str = CUIT) -> str:
    """loginCmsResponse as WSAA sends it: the ticket XML escaped inside loginCmsReturn (reference §1.4)."""
    from xml.sax.saxutils import escape

    generated = expires_at - timedelta(hours=12)
    sso = (f'<sso version="2.0"><id src="CN=wsaahomo, O=AFIP, C=AR, SERIALNUMBER=CUIT 33693450239" '
           f'dst="CN=wsfe, O=AFIP, C=AR" unique_id="1" gen_time="{int(generated.timestamp())}" '
           f'exp_time="{int(expires_at.timestamp())}"/><operation type="login" value="granted">'
           f'<login entity="33693450239" service="wsfe" uid="SERIALNUMBER=CUIT {cuit}, CN=stalela" '
           f'authmethod="cms" regmethod="22"><relations><relation key="{cuit}" reltype="4"/></relations>'
           f"</login></operation></sso>")
    token = token or base64.b64encode(sso.encode()).decode()
    ticket = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><loginTicketResponse version="1.0"><header>'
              f"<source>CN=wsaahomo, O=AFIP, C=AR, SERIALNUMBER=CUIT 33693450239</source>"
              f"<destination>SERIALNUMBER=CUIT {cuit}, CN=stalela</destination><uniqueId>52006586</uniqueId>"
              f"<generationTime>{generated.isoformat(timespec='milliseconds')}</generationTime>"
              f"<expirationTime>{expires_at.isoformat(timespec='milliseconds')}</expirationTime></header>"
              f"<credentials><token>{token}</token><sign>c2lnbg==</sign></credentials></loginTicketResponse>")
    return (f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}"><soapenv:Body>'
            f'<loginCmsResponse xmlns="https://wsaahomo.afip.gov.ar/ws/services/LoginCms">'
            f"<loginCmsReturn>{escape(ticket)}</loginCmsReturn></loginCmsResponse></soapenv:Body></soapenv:Envelope>")


Handler = Callable[[bytes, dict], Awaitable[tuple[int, str]]]


@dataclass
class SoapServer:
    url: str
    requests: list[tuple[str, bytes]] = field(default_factory=list)
    handler: Handler | None = None

    def answer(self, status: int, body: str) -> None:
        async def fixed(_body, _headers):
            return status, body
        self.handler = fixed


@dataclass
class FakeWsaa:
    """WSAA's rule: one ticket per certificate and service while it is valid; alreadyAuthenticated after."""

    lifetime: timedelta = timedelta(hours=12)
    delay: float = 0.0
    issued_until: datetime | None = None
    logins: int = 0

    async def __call__(self, body: bytes, headers: dict) -> tuple[int, str]:
        await asyncio.sleep(self.delay)
        now = datetime.now(timezone.utc)
        if self.issued_until is not None and self.issued_until > now:
            return 500, soap_fault("coe.alreadyAuthenticated",
                                   "El CEE ya posee un TA valido para el acceso al WSN solicitado")
        self.logins += 1
        self.issued_until = now + self.lifetime
        return 200, login_answer(self.issued_until)


@pytest.fixture(scope="session")
def soap_server():
    """One loopback server for the session; each test sets ``handler``."""
    state = SoapServer(url="")

    async def endpoint(request: Request) -> Response:
        body = await request.body()
        state.requests.append((request.headers.get("soapaction", ""), body))
        if state.handler is None:
            return Response("no handler", status_code=500)
        status, text = await state.handler(body, dict(request.headers))
        return Response(text, status_code=status, media_type="text/xml; charset=utf-8")

    app = Starlette(routes=[Route("/{path:path}", endpoint, methods=["POST"])])
    with asgi_in_thread(app) as url:
        state.url = url
        yield state


@pytest.fixture
def soap(soap_server):
    soap_server.requests.clear()
    soap_server.handler = None
    yield soap_server
    soap_server.handler = None
