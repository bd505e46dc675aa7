"""The tenant's bills (``/v1/billing``) and the operator's issuer and revenue (``/v1/ops/billing``)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from stalela.auth.dependencies import AppSettings, Can, DbSession, OperatorPrincipal
from stalela.auth.permissions import Perm
from stalela.billing import bill_schemas as schemas
from stalela.billing import bill_service as service
from stalela.billing import exchange_service
from stalela.billing.bill_lines import PERIOD_PATTERN
from stalela.kit.jsonbody import JSONRoute
from stalela.kit.pagination import Page, PageParams, page_params
from stalela.kit.schemas import PathId

router = APIRouter(route_class=JSONRoute, prefix="/v1/billing", tags=["billing"])
ops_router = APIRouter(route_class=JSONRoute, prefix="/v1/ops/billing", tags=["billing"])
Paging = Annotated[PageParams, Depends(page_params)]
# Bills are what the platform charges for the tenant's usage: whoever reads its usage (owner, admin,
# accountant, auditor, the usage scope).
Reader = Can(Perm.USAGE_READ)
Period = Annotated[str, Path(pattern=PERIOD_PATTERN, description="YYYY-MM")]


@router.get("/invoices", response_model=Page[schemas.BillSummary])
async def list_bills(session: DbSession, _: Reader, paging: Paging):
    rows, more = await service.list_bills(session, limit=paging.limit, starting_after=paging.starting_after)
    return {"data": rows, "has_more": more}


@router.get("/invoices/{bill_id}", response_model=schemas.BillOut)
async def get_bill(bill_id: PathId, session: DbSession, _: Reader, settings: AppSettings):
    return await service.bill_with_invoice(session, settings, bill_id)


@router.get("/invoices/{bill_id}/usage", response_model=schemas.BillUsage)
async def bill_usage(bill_id: PathId, session: DbSession, _: Reader):
    """Per line: the daily aggregates, rate-card version, event count and SHA-256 of the sorted event ids."""
    return service.bill_usage(await service.get_bill(session, bill_id))


@router.get("/invoices/{bill_id}/pdf", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}}, 404: {"description": "bill_not_sealed"}})
async def bill_pdf(bill_id: PathId, session: DbSession, _: Reader, settings: AppSettings):
    name, content = await service.bill_pdf(session, settings, bill_id)
    return Response(content, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/estimate", response_model=schemas.Estimate,
            responses={409: {"description": "rate_card_not_in_force: the plan has no prices for today"}})
async def estimate(session: DbSession, _: Reader):
    """The current period so far, rated as its bill would be."""
    return await service.estimate(session)


@ops_router.get("/issuer", response_model=schemas.IssuerOut,
                responses={404: {"description": "billing_issuer_not_found: none configured yet"}})
async def get_issuer(session: DbSession, _: OperatorPrincipal):
    return await service.get_issuer(session)


@ops_router.put("/issuer", response_model=schemas.IssuerOut,
                responses={409: {"description": "tenant_not_active, outlet_inactive"}})
async def put_issuer(body: schemas.IssuerIn, session: DbSession, _: OperatorPrincipal):
    """The tenant and outlet that seal the platform's bills (`stalela billing issuer`)."""
    return await service.set_issuer(session, body.tenant_id, body.outlet_id)


@ops_router.get("/revenue", response_model=schemas.Revenue)
async def revenue(session: DbSession, _: OperatorPrincipal,
                  period: Annotated[str, Query(pattern=PERIOD_PATTERN, description="YYYY-MM")]):
    return {"period": period, "data": await service.revenue(session, period)}


@ops_router.put("/exchange-rates/{period}", response_model=schemas.ExchangeRateOut, status_code=200,
                responses={201: {"model": schemas.ExchangeRateOut, "description": "recorded"},
                           409: {"description": "exchange_rate_in_use: a sealed bill was converted at another rate"}})
async def put_exchange_rate(period: Period, body: schemas.ExchangeRateIn, session: DbSession, _: OperatorPrincipal,
                            response: Response):
    """The period's rate: ``rate`` units of the invoice currency (default: the issuer's) per unit of ``currency``
    (a plan's). Correctable until a sealed bill used it (`stalela billing exchange-rate`)."""
    row, created = await exchange_service.put_rate(session, period, body.currency, body.rate, body.invoice_currency)
    response.status_code = 201 if created else 200
    return row


@ops_router.get("/exchange-rates/{period}", response_model=schemas.ExchangeRates)
async def exchange_rates(period: Period, session: DbSession, _: OperatorPrincipal):
    return {"period": period, "data": await exchange_service.rates_of(session, period)}
