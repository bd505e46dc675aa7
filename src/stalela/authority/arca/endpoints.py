from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import Field

from stalela.auth.dependencies import AppSettings, Can, DbSession, TenantSession
from stalela.auth.permissions import Perm
from stalela.authority.arca import series, service
from stalela.kit.jsonbody import JSONRoute
from stalela.kit.schemas import StrictModel

router = APIRouter(route_class=JSONRoute, prefix="/v1/authority/arca", tags=["authority"])

# A certificate or key in PEM is a few KB; the bound keeps a body from filling memory with one field.
_PEM = Field(min_length=1, max_length=20_000)
Environment = Literal["homologation", "production", "custom"]


class ArcaCredentialsIn(StrictModel):
    certificate: str = _PEM
    private_key: str | None = Field(None, min_length=1, max_length=20_000,
                                    description="Omit to bind the certificate to the key of the last CSR (HSM).")
    environment: Environment
    wsaa_url: str | None = Field(None, max_length=500, description="Only with environment custom (required then).")
    wsfe_url: str | None = Field(None, max_length=500, description="Only with environment custom (required then).")


class ArcaCsrIn(StrictModel):
    environment: Literal["homologation", "production"]
    # ARCA's portal shows the alias; a subject attribute holds at most 64 characters (RFC 5280 ub-*).
    organization: str = Field(min_length=1, max_length=64)
    alias: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")


# Checked in a short transaction of its own: the custom URLs' DNS lookups come before the request's transaction.
Admin = Can(Perm.ADMIN, own_transaction=True)


async def _vetted(body: ArcaCredentialsIn, settings: AppSettings, _: Admin) -> tuple[ArcaCredentialsIn, tuple]:
    return body, await service.vet_urls(settings, body.environment, body.wsaa_url, body.wsfe_url)


_CONFLICTS = {409: {"description": "jurisdiction_mismatch: the tenant is not AR; hsm_not_configured (CSR)"}}


@router.put("/credentials", responses=_CONFLICTS)
async def put_credentials(vetted: Annotated[tuple[ArcaCredentialsIn, tuple], Depends(_vetted)], principal: Admin,
                          session: TenantSession, settings: AppSettings):
    """Store the tenant's ARCA certificate (and its key, kept encrypted; or bound to the key of the last
    CSR, in the HSM). Checked: PEMs, key matches, serialNumber CUIT = tax_id, not expired."""
    body, (wsaa_url, wsfe_url) = vetted
    row = await service.save_credentials(session, settings, principal, certificate=body.certificate,
                                         private_key=body.private_key, environment=body.environment,
                                         wsaa_url=wsaa_url if body.environment == "custom" else None,
                                         wsfe_url=wsfe_url if body.environment == "custom" else None)
    return service.credentials_view(row)


@router.get("/credentials", responses={404: {"description": "arca_credentials_not_found"}})
async def get_credentials(session: DbSession, principal: Can(Perm.ADMIN)):
    """The certificate's subject, CUIT and expiry, the environment and URLs; never the key."""
    return service.credentials_view(await service.get_credentials(session, principal))


@router.post("/csr", responses=_CONFLICTS)
async def create_csr(body: ArcaCsrIn, session: DbSession, principal: Can(Perm.ADMIN), settings: AppSettings):
    """Generate an RSA 2048 key inside the PKCS#11 token and return a CSR for ARCA's portal
    (O=organization, CN=alias, serialNumber=CUIT tax_id). PUT the issued certificate without a key."""
    csr, row = await service.create_csr(session, settings, principal, environment=body.environment,
                                        organization=body.organization, alias=body.alias)
    return {"csr": csr, "credentials": service.credentials_view(row)}


class RealignIn(StrictModel):
    outlet_id: str = Field(min_length=1, max_length=64)
    type: str = Field(min_length=1, max_length=4, description='The receipt type (CbteTipo), e.g. "6"')


@router.post("/realign", responses={404: {"description": "outlet_not_found"},
                                    409: {"description": "series_in_step, series_not_held, series_moved, series_busy, "
                                                         "arca_not_configured"},
                                    503: {"description": "arca_unavailable"}})
async def realign(body: RealignIn, principal: Can(Perm.ADMIN, own_transaction=True), request: Request,
                  settings: AppSettings):
    """Continue a blocked series from ARCA's last number (FECompUltimoAutorizado) in a new generation;
    receipts still waiting under numbers ARCA can no longer take are marked rejected (series_realigned).
    See docs/jurisdictions/ar-operations.md."""
    return await series.realign(request.app.state.db, settings, principal, body.outlet_id, body.type)
