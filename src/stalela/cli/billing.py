"""``stalela billing``: plans, rate cards and tenants' plans (docs/billing.md). The sub-app other billing
commands (issuer, close) join: each command is a function on ``billing_app``, its work in ``_run``."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Awaitable, Callable, Optional

import typer

from stalela.cli.output import emit, fail, usage
from stalela.config import Settings, get_settings

billing_app = typer.Typer(help="Platform billing: plans, rate cards, bills (docs/billing.md)", no_args_is_help=True)
plan_app = typer.Typer(help="Billing plans", no_args_is_help=True)
rate_card_app = typer.Typer(help="Versioned rate cards of a plan", no_args_is_help=True)
billing_app.add_typer(plan_app, name="plan")
billing_app.add_typer(rate_card_app, name="rate-card")


def _run(work: Callable[[Any, Settings], Awaitable[Any]]) -> Any:
    """``work(session, settings)`` in one committed platform transaction; a refusal exits with its code."""
    from pydantic import ValidationError

    from stalela.db.session import Database
    from stalela.errors import StalelaError
    from stalela.tenancy.context import bind_platform

    settings = get_settings()

    async def go() -> Any:
        db = Database.from_settings(settings)
        try:
            async with db.transaction() as session:
                await bind_platform(session)
                return await work(session, settings)
        finally:
            await db.dispose()

    try:
        return asyncio.run(go())
    except (StalelaError, ValidationError) as exc:
        fail(exc)


_show = emit


def _plan_line(plan: dict) -> str:
    caps = ", ".join(f"{k} ≤ {v}" for k, v in plan["quotas"].items()) or "no caps"
    return f"{plan['id']:20} {plan['currency']}  {plan['name']}  ({caps})"


@plan_app.command("create")
def plan_create(
    plan_id: str = typer.Option(..., "--id", help="A slug: lowercase letters, digits, - and _"),
    name: str = typer.Option(...),
    currency: str = typer.Option("EUR"),
    quota: Optional[list[str]] = typer.Option(None, "--quota", help="RESOURCE=CAP per month, repeatable"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create a plan (then give it prices with `stalela billing rate-card add`)."""
    from stalela.billing import rating_endpoints, rating_schemas, rating_service

    quotas = dict(q.split("=", 1) for q in quota or [] if "=" in q) or None

    async def work(session, settings):  # noqa: ANN001, ANN202
        data = rating_schemas.PlanCreate.model_validate({"id": plan_id, "name": name, "currency": currency,
                                                         "quotas": quotas})
        return await rating_service.create_plan(session, settings, data)

    plan = _run(work)
    out = rating_endpoints.plan_out(plan).model_dump(mode="json")
    _show(out, as_json, [f"created plan {_plan_line(out)}"])


@plan_app.command("list")
def plan_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """Every plan, with its quotas and its latest rate card."""
    from stalela.billing import rating_endpoints, rating_service

    async def work(session, settings) -> list[dict]:  # noqa: ANN001
        out = []
        for plan in await rating_service.list_plans(session):
            cards = await rating_service.list_rate_cards(session, plan.id)
            latest = cards[-1] if cards else None
            out.append({**rating_endpoints.plan_out(plan).model_dump(mode="json"),
                        "latest_rate_card": None if latest is None else
                        {"version": latest.version, "effective_from": str(latest.effective_from)}})
        return out

    plans = _run(work)
    _show({"data": plans}, as_json, [
        _plan_line(p) + (f"  rate card v{p['latest_rate_card']['version']} from {p['latest_rate_card']['effective_from']}"
                         if p["latest_rate_card"] else "  no rate card") for p in plans])


@rate_card_app.command("add")
def rate_card_add(
    plan: str = typer.Option(..., "--plan"),
    effective_from: str = typer.Option(..., "--effective-from", help="YYYY-MM-DD"),
    prices: Path = typer.Option(..., "--prices", exists=True, dir_okay=False,
                                help="JSON {resource: {unit_price, per, free, tiers}}"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Add the plan's next rate card version, in force from --effective-from."""
    from stalela.billing import rating_schemas, rating_service

    try:
        body = json.loads(prices.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        usage(f"{prices}: not JSON ({exc})")

    async def work(session, settings):  # noqa: ANN001, ANN202
        data = rating_schemas.RateCardCreate.model_validate({"effective_from": effective_from, "prices": body})
        return await rating_service.add_rate_card(session, settings, plan, data)

    card = _run(work)
    out = {"plan_id": card.plan_id, "version": card.version, "effective_from": str(card.effective_from),
           "prices": json.loads(card.prices)}
    _show(out, as_json, [f"plan {card.plan_id}: rate card v{card.version} in force from {card.effective_from}"])


@billing_app.command("assign")
def assign(
    tenant: str = typer.Option(..., "--tenant"),
    plan: str = typer.Option(..., "--plan"),
    anomaly_threshold: Optional[str] = typer.Option(None, "--anomaly-threshold", help="z-score; default the platform's"),
    anomaly_method: Optional[str] = typer.Option(None, "--anomaly-method", help="zscore or mad"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Put a tenant on a plan (replacing its anomaly overrides with the ones given)."""
    from stalela.billing import rating_endpoints, rating_schemas, rating_service

    async def work(session, settings):  # noqa: ANN001, ANN202
        data = rating_schemas.AccountUpdate.model_validate(
            {"plan_id": plan, "anomaly_threshold": anomaly_threshold, "anomaly_method": anomaly_method})
        return await rating_service.assign(session, tenant, data)

    out = rating_endpoints.account_out(_run(work)).model_dump(mode="json")
    _show(out, as_json, [f"tenant {out['tenant_id']} is on plan {out['plan_id']}"])
