"""Exchange rates: the operator's rate of a period between a plan's currency and the issuer's invoice
currency, and what finalisation reads. Flushes, never commits.

A rate is recorded per (period, currency, invoice currency): ``rate`` units of the invoice currency for
one unit of the plan's (``3050.25`` CDF per EUR). It may be corrected until a sealed bill used it; from
then on it is immutable (putting the same rate again is answered, another is 409), because that bill's
sealed invoice was converted at it. Finalisation reads it under a row lock, so a correction either
happens before the bill's transaction reads it or waits and is refused.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from stalela.billing.bill_lines import check_period
from stalela.billing.bill_models import ExchangeRate
from stalela.billing.bill_repository import ExchangeRateRepository, IssuerRepository
from stalela.db.base import utcnow
from stalela.kit.money import decimal_str
from stalela.tenancy.repository import TenantRepository
from stalela.errors import Conflict, ValidationFailed
from stalela.fiscal.jurisdictions import get_jurisdiction


def view(row: ExchangeRate) -> dict[str, Any]:
    return {"period": row.period, "currency": row.currency, "invoice_currency": row.invoice_currency,
            "rate": row.rate, "created_at": row.created_at, "updated_at": row.updated_at, "used_at": row.used_at}


async def issuer_currency(session: AsyncSession) -> str | None:
    """The configured issuer's invoice currency (its jurisdiction's), or None without an issuer."""
    row = await IssuerRepository(session).get()
    tenant = await TenantRepository(session).get(row.issuer_tenant_id) if row is not None else None
    return get_jurisdiction(tenant.jurisdiction).currency if tenant is not None else None


async def put_rate(session: AsyncSession, period: str, currency: str, rate: Decimal,
                   invoice_currency: str | None = None) -> tuple[dict[str, Any], bool]:
    """Platform-bound. Record (or correct, while unused) the period's rate; ``invoice_currency`` defaults to
    the configured issuer's. Returns (the rate, created)."""
    check_period(period)
    invoice_currency = invoice_currency or await issuer_currency(session)
    if invoice_currency is None:
        raise ValidationFailed("no billing issuer is configured: name the invoice currency",
                               code="invoice_currency_required", field="invoice_currency")
    if invoice_currency == currency:
        raise ValidationFailed(f"a rate converts between two currencies; both are {currency}",
                               code="exchange_rate_same_currency", field="currency")
    text, now = decimal_str(rate), utcnow()
    repo = ExchangeRateRepository(session)
    created = await repo.insert_new(ExchangeRate(period=period, currency=currency, invoice_currency=invoice_currency,
                                                 rate=text, created_at=now, updated_at=now))
    row = await repo.get(period, currency, invoice_currency, lock=True)
    if not created and Decimal(row.rate) != rate:
        if row.used_at is not None:
            raise Conflict(f"a sealed bill was converted at {row.rate} {invoice_currency}/{currency} for {period}: "
                           "the rate is immutable (correct that bill with a credit note)",
                           code="exchange_rate_in_use", field="rate")
        row.rate, row.updated_at = text, now
        await session.flush()
    return view(row), created


async def rates_of(session: AsyncSession, period: str) -> list[dict[str, Any]]:
    return [view(r) for r in await ExchangeRateRepository(session).of_period(check_period(period))]


async def rate_for(session: AsyncSession, period: str, currency: str, invoice_currency: str) -> Decimal:
    """The rate a bill of ``period`` is converted at, locked until the bill's transaction ends (any binding:
    a platform table). None recorded: 409 ``billing_exchange_rate_missing``; the bill stays a draft."""
    row = await ExchangeRateRepository(session).get(period, currency, invoice_currency, lock=True)
    if row is None:
        raise Conflict(f"no exchange rate {currency}→{invoice_currency} for {period}: the bill stays a draft until "
                       f"the operator records it (stalela billing exchange-rate --period {period} --currency "
                       f"{currency} --rate R)", code="billing_exchange_rate_missing")
    return Decimal(row.rate)


async def mark_used(session: AsyncSession, period: str, currency: str, invoice_currency: str) -> None:
    await ExchangeRateRepository(session).mark_used(period, currency, invoice_currency, utcnow())
