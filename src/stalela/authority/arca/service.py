"""A tenant's ARCA credentials, and the WSAA ticket every process shares.

Credentials: a certificate with its key uploaded (the key stored encrypted under the master key), or
a key generated inside the PKCS#11 token for a CSR and the certificate ARCA issued for it bound later.
Either way the certificate must represent the tenant (serialNumber CUIT = tax_id) and be valid.

Tickets (``get_ticket``): WSAA gives one ticket per certificate and service for 12 h and answers
``coe.alreadyAuthenticated`` to any second login meanwhile, so the ticket is cached in the database
for every process, and a login happens under a lock (a row lock on PostgreSQL; SQLite's writers run
one at a time), so concurrent workers cause one login, not a fault storm.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import anyio
import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy.ext.asyncio import AsyncSession

from stalela.authority.arca import certs, wsaa, wsfe
from stalela.authority.arca.cms import HsmSigner, Signer, SoftwareSigner
from stalela.authority.arca.errors import AlreadyAuthenticated, NotConfigured, TicketUnavailable
from stalela.authority.arca.models import ArcaCredential, ArcaTicket
from stalela.authority.arca.repository import ArcaRepository
from stalela.auth.principal import Principal
from stalela.config import Settings
from stalela.db.base import utcnow
from stalela.db.session import Database
from stalela.errors import Conflict, FieldError, NotFound, ValidationFailed
from stalela.fiscal.signing.registry import backend_for
from stalela.kit import netguard
from stalela.kit.clock import rfc3339
from stalela.kit.ids import new_id
from stalela.kit.secretbox import open_secret, seal_secret
from stalela.outbox.service import enqueue
from stalela.tenancy.context import bind_tenant
from stalela.tenancy.repository import TenantRepository

ENVIRONMENTS = {
    "homologation": (wsaa.HOMOLOGATION_URL, wsfe.HOMOLOGATION_URL),
    "production": (wsaa.PRODUCTION_URL, wsfe.PRODUCTION_URL),
}
# A ticket with less left than this is not handed out: a caller may hold it for a whole exchange
# (retries included), and WSFEv1 answers Err 600 to a ticket that expired in flight.
TICKET_MARGIN = timedelta(minutes=5)
JURISDICTION = "AR"


def _context(tenant_id: str) -> str:
    return f"arca:{tenant_id}"


def _url_length() -> int:
    return ArcaCredential.wsaa_url.type.length


async def vet_urls(settings: Settings, environment: str, wsaa_url: str | None,
                   wsfe_url: str | None) -> tuple[str, str]:
    """The endpoints for ``environment``: ARCA's own for homologation and production, the given ones
    (required, and through the outbound guard like any tenant-chosen URL) for ``custom``. Called by the
    route before its transaction starts (the guard's DNS lookup must hold no lock or connection)."""
    if environment != "custom":
        for field, value in (("wsaa_url", wsaa_url), ("wsfe_url", wsfe_url)):
            if value is not None:
                raise ValidationFailed(f"{field}: only with environment custom (ARCA's own URLs are used)",
                                       code="arca_url_not_allowed", field=field)
        return ENVIRONMENTS[environment]
    vetted = []
    for field, value in (("wsaa_url", wsaa_url), ("wsfe_url", wsfe_url)):
        if not value:
            raise ValidationFailed(f"{field}: required with environment custom", code="required", field=field,
                                   errors=[FieldError(field, "required", "required with environment custom")])
        vetted.append(await netguard.vet_url(value, allow_private=settings.webhooks_allow_private, field=field,
                                             code_prefix="arca_url", max_length=_url_length()))
    return vetted[0], vetted[1]


async def _ar_tenant(session: AsyncSession, principal: Principal) -> Any:
    tenant = await TenantRepository(session).get(principal.tenant_id)
    if tenant is None or tenant.jurisdiction != JURISDICTION:
        raise Conflict("ARCA credentials are for tenants of jurisdiction AR", code="jurisdiction_mismatch")
    return tenant


def _hsm(settings: Settings) -> Any:
    """The PKCS#11 backend (one per process, shared with seal signing: one session pool for the token)."""
    if not settings.pkcs11_library or settings.pkcs11_pin is None:
        raise Conflict("no PKCS#11 token is configured (STALELA_PKCS11_LIBRARY, STALELA_PKCS11_PIN): upload "
                       "the certificate with its private key instead", code="hsm_not_configured")
    return backend_for(settings, "pkcs11")


async def save_credentials(session: AsyncSession, settings: Settings, principal: Principal, *, certificate: str,
                           private_key: str | None, environment: str, wsaa_url: str | None = None,
                           wsfe_url: str | None = None) -> ArcaCredential:
    """Store (or replace) the tenant's certificate. Without ``private_key`` it is bound to the key
    generated in the HSM by the last CSR. Cached tickets are dropped (they belong to the old one)."""
    urls = await vet_urls(settings, environment, wsaa_url, wsfe_url)
    tenant = await _ar_tenant(session, principal)
    cert = certs.load_certificate(certificate)
    repo = ArcaRepository(session)
    row = await repo.credentials(lock=True)
    key_encrypted, key_label = None, None
    if private_key is not None:
        key = certs.load_private_key(private_key)
        if not certs.same_public_key(cert, key.public_key()):
            raise ValidationFailed("private_key: does not match the certificate's public key",
                                   code="key_mismatch", field="private_key")
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode("ascii")
        key_encrypted = seal_secret(settings, pem, _context(principal.tenant_id))
    else:
        label = row.pending_key_label if row is not None else None
        if label is None:
            raise ValidationFailed("private_key: required unless a CSR was made here (POST /v1/authority/arca/csr)",
                                   code="required", field="private_key",
                                   errors=[FieldError("private_key", "required", "required without a pending CSR")])
        public = await anyio.to_thread.run_sync(_hsm(settings).rsa_public_key, label)
        if not certs.same_public_key(cert, public):
            raise ValidationFailed("certificate: not issued for the key of the last CSR",
                                   code="key_mismatch", field="certificate")
        key_label = label
    info = certs.check_certificate(cert, tax_id=tenant.tax_id, now=utcnow())
    now = utcnow()
    if row is None:
        row = ArcaCredential(tenant_id=principal.tenant_id, created_at=now)
        repo.add(row)
    row.environment, (row.wsaa_url, row.wsfe_url) = environment, urls
    row.certificate_pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
    row.key_encrypted, row.key_label = key_encrypted, key_label
    if key_label is not None:
        row.pending_key_label = None
    row.subject, row.cuit, row.not_after, row.updated_at = info.subject, info.cuit, info.not_after, now
    await repo.forget_tickets()
    # Aligns unused series with ARCA, then sends every receipt that waited for credentials (agent.py).
    enqueue(session, principal.tenant_id, "arca.credentials_saved", {})
    await session.flush()
    return row


async def create_csr(session: AsyncSession, settings: Settings, principal: Principal, *, environment: str,
                     organization: str, alias: str) -> tuple[str, ArcaCredential]:
    """A new RSA 2048 key inside the PKCS#11 token and a CSR for it (O, CN, serialNumber=CUIT tax_id).
    The current certificate, if any, keeps working until the new one is uploaded."""
    urls = ENVIRONMENTS.get(environment)
    tenant = await _ar_tenant(session, principal)
    hsm = _hsm(settings)
    repo = ArcaRepository(session)
    row = await repo.credentials(lock=True)
    if row is None and urls is None:
        raise ValidationFailed("environment: custom needs its URLs: make the CSR for homologation or production, "
                               "then PUT the certificate with environment custom",
                               code="arca_environment_invalid", field="environment")
    # One label per CSR: a later CSR never replaces the key of a certificate in use.
    label = f"arca-{principal.tenant_id}-{new_id('k')[-10:]}"
    public = await anyio.to_thread.run_sync(hsm.generate_rsa, label)
    csr = await anyio.to_thread.run_sync(lambda: certs.build_csr(
        public, lambda data: hsm.sign_sha256_rsa(label, data), organization=organization, alias=alias,
        cuit=tenant.tax_id))
    now = utcnow()
    if row is None:
        row = ArcaCredential(tenant_id=principal.tenant_id, environment=environment, wsaa_url=urls[0],
                             wsfe_url=urls[1], created_at=now)
        repo.add(row)
    row.pending_key_label, row.updated_at = label, now
    await session.flush()
    return csr, row


async def get_credentials(session: AsyncSession, principal: Principal) -> ArcaCredential:
    row = await ArcaRepository(session).credentials()
    if row is None:
        raise NotFound("this tenant has no ARCA credentials", code="arca_credentials_not_found")
    return row


def credentials_view(row: ArcaCredential) -> dict[str, Any]:
    if row.certificate_pem is None:
        status = "awaiting_certificate"
    elif row.not_after is not None and row.not_after <= utcnow():
        status = "expired"
    else:
        status = "active"
    return {
        "environment": row.environment, "wsaa_url": row.wsaa_url, "wsfe_url": row.wsfe_url, "status": status,
        "subject": row.subject, "cuit": row.cuit,
        "not_after": rfc3339(row.not_after) if row.not_after else None,
        "key": "hsm" if row.key_label else ("stored encrypted" if row.key_encrypted else None),
        "csr_pending": row.pending_key_label is not None,
        "updated_at": rfc3339(row.updated_at),
    }


# --- tickets -------------------------------------------------------------------------------------


def _signer(settings: Settings, row: ArcaCredential) -> Signer:
    certificate = x509.load_pem_x509_certificate(row.certificate_pem.encode("ascii"))
    if row.key_label:
        return HsmSigner(certificate, row.key_label, _hsm(settings).sign_sha256_rsa)
    key = serialization.load_pem_private_key(
        open_secret(settings, row.key_encrypted, _context(row.tenant_id)).encode("ascii"), password=None)
    return SoftwareSigner(certificate, key)


def _usable(row: ArcaCredential | None) -> ArcaCredential:
    if row is None or row.certificate_pem is None:
        raise NotConfigured("the tenant has no ARCA certificate (PUT /v1/authority/arca/credentials)")
    return row


def _as_ticket(row: ArcaTicket) -> wsaa.Ticket:
    return wsaa.Ticket(token=row.token, sign=row.sign, expires_at=row.expires_at, generated_at=row.generated_at,
                       cuits=tuple(row.cuits.split()))


@dataclass(frozen=True)
class Endpoint:
    """What a WSFEv1 caller needs: where, and as whom (the ticket's Auth)."""

    client: wsfe.WsfeClient
    auth: wsfe.Auth
    environment: str


async def get_ticket(db: Database, settings: Settings, tenant_id: str, service: str = "wsfe", *,
                     client: httpx.AsyncClient | None = None) -> wsaa.Ticket:
    """A ticket valid for more than 5 minutes: the cached one, or a new one from one loginCms.

    Raises ``NotConfigured`` (no certificate), ``CertificateRejected`` (an admin must act),
    ``Transient`` (WSAA unreachable: retry later) and ``TicketUnavailable`` (WSAA says a ticket is
    valid, but no process of ours stored it: unusable until it expires)."""
    async with db.transaction(readonly=True) as session:
        await bind_tenant(session, tenant_id)
        repo = ArcaRepository(session)
        row = _usable(await repo.credentials())
        cached = await repo.ticket(service, row.environment)
        if cached is not None and cached.expires_at - utcnow() > TICKET_MARGIN:
            return _as_ticket(cached)
    async with db.transaction() as session:
        await bind_tenant(session, tenant_id)
        repo = ArcaRepository(session)
        row = _usable(await repo.credentials(lock=True))
        cached = await repo.ticket(service, row.environment)  # another process may have logged in meanwhile
        if cached is not None and cached.expires_at - utcnow() > TICKET_MARGIN:
            return _as_ticket(cached)
        # Saved before a rule existed: the signed request is not sent where save time would refuse it now.
        reason = netguard.refused(row.wsaa_url, allow_private=settings.webhooks_allow_private)
        if reason is not None:
            raise NotConfigured(f"the WSAA URL is refused ({reason}): save the credentials again")
        signer = await anyio.to_thread.run_sync(_signer, settings, row)
        try:
            ticket = await wsaa.login_cms(row.wsaa_url, signer, service, timeout=settings.authority_timeout_seconds,
                                          allow_private=settings.webhooks_allow_private, client=client)
        except AlreadyAuthenticated:
            cached = await repo.ticket(service, row.environment)
            if cached is not None and cached.expires_at > utcnow():
                return _as_ticket(cached)  # valid, if for less than the margin: better than nothing
            raise TicketUnavailable(
                "WSAA holds a valid ticket for this certificate that no process of ours stored (one that died "
                "after logging in, or another system using the same certificate): ARCA refuses a new one until "
                "it expires (at most 12 h), unless a new certificate is uploaded") from None
        if cached is None:
            cached = ArcaTicket(tenant_id=tenant_id, service=service, environment=row.environment)
            repo.add(cached)
        cached.token, cached.sign, cached.expires_at = ticket.token, ticket.sign, ticket.expires_at
        cached.generated_at, cached.cuits, cached.created_at = ticket.generated_at, " ".join(ticket.cuits), utcnow()
        await session.flush()
        return ticket


async def forget_ticket(db: Database, tenant_id: str, service: str = "wsfe") -> None:
    """Drop the cached ticket (WSFEv1 answered Err 600 to it): the next ``get_ticket`` logs in again."""
    async with db.transaction() as session:
        await bind_tenant(session, tenant_id)
        await ArcaRepository(session).forget_tickets(service)


async def wsfe_endpoint(db: Database, settings: Settings, tenant_id: str, *,
                        client: httpx.AsyncClient | None = None) -> Endpoint:
    """The tenant's WSFEv1 client and Auth (ticket included), for the sync agent."""
    ticket = await get_ticket(db, settings, tenant_id, "wsfe", client=client)
    async with db.transaction(readonly=True) as session:
        await bind_tenant(session, tenant_id)
        row = _usable(await ArcaRepository(session).credentials())
        reason = netguard.refused(row.wsfe_url, allow_private=settings.webhooks_allow_private)
        if reason is not None:
            raise NotConfigured(f"the WSFEv1 URL is refused ({reason}): save the credentials again")
        return Endpoint(client=wsfe.WsfeClient(row.wsfe_url, timeout=settings.authority_timeout_seconds,
                                               allow_private=settings.webhooks_allow_private, client=client),
                        auth=wsfe.Auth(token=ticket.token, sign=ticket.sign, cuit=row.cuit),
                        environment=row.environment)
