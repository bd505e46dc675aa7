"""``stalela billing issuer``, ``exchange-rate`` and ``close``: the monthly bills by hand (docs/billing.md)."""
from __future__ import annotations

import asyncio
from typing import Any, Optional

import typer
from pydantic import ValidationError

from stalela.cli.output import EXIT_FAILED, emit, fail, note, usage
from stalela.config import Settings, get_settings
from stalela.errors import StalelaError


def register(billing_app: typer.Typer) -> None:
    """Add these commands to the ``stalela billing`` sub-app."""
    billing_app.command("issuer")(issuer)
    billing_app.command("close")(close)
    billing_app.command("exchange-rate")(exchange_rate)


async def _issuer(settings: Settings, tenant: str | None, outlet: str | None) -> dict[str, Any]:
    from stalela.billing import bill_service
    from stalela.db.session import Database
    from stalela.tenancy.context import bind_platform

    db = Database.from_settings(settings)
    try:
        async with db.transaction() as session:
            await bind_platform(session)
            if tenant is None:
                return await bill_service.get_issuer(session)
            return await bill_service.set_issuer(session, tenant, outlet)
    finally:
        await db.dispose()


def issuer(
    tenant: Optional[str] = typer.Option(None, "--tenant", help="The platform's issuing tenant"),
    outlet: Optional[str] = typer.Option(None, "--outlet", help="Its outlet that numbers the bills"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Set (or, without options, show) the tenant and outlet that seal the platform's bills."""
    if (tenant is None) != (outlet is None):
        usage("give both --tenant and --outlet")
    try:
        row = asyncio.run(_issuer(get_settings(), tenant, outlet))
    except StalelaError as exc:
        fail(exc)
    emit(row, as_json, f"billing issuer: tenant {row['tenant_id']}, outlet {row['outlet_id']}")


async def _close(settings: Settings, period: str, finalize_now: bool, tenants: list[str] | None):  # noqa: ANN202
    from stalela.billing import bill_tasks
    from stalela.db.session import Database

    db = Database.from_settings(settings)
    try:
        return await bill_tasks.close_period(db, settings, period, finalize_now=finalize_now, tenant_ids=tenants)
    finally:
        await db.dispose()


def close(
    period: str = typer.Option(..., "--period", help="YYYY-MM: a UTC calendar month that has ended"),
    finalize_now: bool = typer.Option(False, "--finalize-now", help="Seal the drafts now, without the grace period"),
    tenant: Optional[list[str]] = typer.Option(None, "--tenant", help="Only this tenant (repeatable)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Draft every tenant's bill of the period (or refresh it) and seal those past their grace. Idempotent."""
    from stalela.observability.runtime import configure_logs

    settings = get_settings()
    configure_logs(settings)
    try:
        report = asyncio.run(_close(settings, period, finalize_now, tenant or None))
    except StalelaError as exc:
        fail(exc)
    emit({"period": report.period, "bills": report.bills, "failed": report.failed}, as_json,
         [f"{tenant_id}  {bill['period']}  {bill['status']:6}  {bill['total']:>12} "
          f"{bill['currency']:3}  {bill['invoice_id'] or '-'}" for tenant_id, bill in report.bills.items()])
    if not as_json:
        for tenant_id, error in report.failed.items():
            note(f"{tenant_id}  FAILED {error}", markup=False)
        note(f"{len(report.bills)} bill(s), {len(report.failed)} failed")
    if report.failed:
        raise typer.Exit(EXIT_FAILED)


async def _exchange_rate(settings: Settings, period: str, currency: str | None, rate: str | None,
                         invoice_currency: str | None) -> list[dict[str, Any]]:
    from stalela.billing import bill_schemas, exchange_service
    from stalela.db.session import Database
    from stalela.tenancy.context import bind_platform

    db = Database.from_settings(settings)
    try:
        async with db.transaction() as session:
            await bind_platform(session)
            if rate is not None:
                body = bill_schemas.ExchangeRateIn.model_validate(
                    {"currency": currency, "rate": rate, "invoice_currency": invoice_currency})
                await exchange_service.put_rate(session, period, body.currency, body.rate, body.invoice_currency)
            return await exchange_service.rates_of(session, period)
    finally:
        await db.dispose()


def exchange_rate(
    period: str = typer.Option(..., "--period", help="YYYY-MM: the bills' period"),
    currency: Optional[str] = typer.Option(None, "--currency", help="The plan's currency, e.g. EUR"),
    rate: Optional[str] = typer.Option(None, "--rate", help="Units of the invoice currency per unit of --currency"),
    invoice_currency: Optional[str] = typer.Option(None, "--invoice-currency",
                                                   help="Default: the configured issuer's invoice currency"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Record the rate a period's bills are converted at (immutable once a sealed bill used it); without
    --rate, show the period's rates."""
    if (currency is None) != (rate is None):
        usage("give both --currency and --rate")
    try:
        rows = asyncio.run(_exchange_rate(get_settings(), period, currency, rate, invoice_currency))
    except (StalelaError, ValidationError) as exc:
        fail(exc)
    emit({"period": period, "data": rows}, as_json,
         [f"{row['period']}  1 {row['currency']} = {row['rate']} {row['invoice_currency']}  "
          f"({'used ' + format(row['used_at'], '%Y-%m-%d') if row['used_at'] else 'unused'})" for row in rows])
