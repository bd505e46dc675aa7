"""The totals check: the mapped body is computed by the jurisdiction's own engine, exactly as the sealing
pipeline will compute it, and compared with the platform's total.

**The rounding rule** (the one place it is written): the two totals may differ by at most

    options.tolerance x (1 + rounding lines + 1 if the amounts were converted to another currency)

with ``tolerance`` 0.01 by default. "Rounding lines" (``Order.rounding_lines``) are the lines whose
tax the platform rounded by itself: a tax-exclusive Shopify shop's taxed lines, every taxed
WooCommerce line. The engine taxes once per group (kit.money, half-up), the platform once per line;
each line's tax is within half a cent of the exact figure on both sides, so each line may move the
total by up to a cent. On a tax-inclusive order no tax is added, the lines add up to the platform's
total exactly and only the order's own cent is allowed. A USD order invoiced in CDF is compared
through the invoice's USD equivalent, itself rounded once.

Anything further is not rounding: a price, a discount or a rate read wrongly. Sealing it would
put a wrong total on a fiscal document that can never be changed, so the order is parked.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from stalela.connectors.mapping.model import TOTALS_MISMATCH, Mapped, Order, Parked
from stalela.errors import FiscalRuleViolation
from stalela.fiscal.core.invoice import ComputedInvoice, OriginalInvoice, draft_from_request
from stalela.fiscal.jurisdictions import get_jurisdiction
from stalela.kit.money import money_context, money_str

# The engine's rule codes that are about the buyer's identity: their own reasons (the console tells the
# merchant what to ask the buyer for); every other refusal is rejected_by_rules with the rule named.
_RULE_REASONS = {
    "buyer_identification_required": "missing_buyer_id",
    "class_a_requires_cuit": "missing_buyer_id",
    "buyer_tax_id_required": "missing_buyer_id",
    "invalid_doc_number": "invalid_buyer_id",
    "doc_number_check_digit": "invalid_buyer_id",
    "buyer_name_required": "missing_buyer_name",
}


def allowed_difference(order: Order, tolerance: Decimal, converted: bool) -> Decimal:
    """The rounding rule (module docstring)."""
    with money_context():
        return tolerance * (1 + order.rounding_lines + (1 if converted else 0))


def compute(body: dict[str, Any], jurisdiction: str, issuer_vat_condition: str | None,
            original: OriginalInvoice | None = None) -> ComputedInvoice:
    """The body as the sealing pipeline computes it (sealing.to_draft: the same draft build)."""
    rules = get_jurisdiction(jurisdiction)
    draft = draft_from_request(body, rules.currency, issuer_vat_condition)
    return rules.compute(draft, original)


def our_total(computed: ComputedInvoice, converted: bool) -> Decimal:
    if converted:
        assert computed.exchange is not None  # a converted body always carries its exchange
        return computed.exchange.total_foreign
    return computed.totals.total


def refused(exc: FiscalRuleViolation) -> Parked:
    reason = _RULE_REASONS.get(exc.code, "rejected_by_rules")
    return Parked(reason, f"{exc.code} ({exc.field}): {exc.detail}")


def compare(body: dict[str, Any], ours: Decimal, platform_total: Decimal, allowed: Decimal,
            kind: str = "invoice") -> Mapped | Parked:
    with money_context():
        difference = ours - platform_total
    figures = {"total": money_str(ours), "platform_total": money_str(platform_total),
               "difference": money_str(difference), "allowed": money_str(allowed)}
    if abs(difference) > allowed:
        return Parked(TOTALS_MISMATCH,
                      f"our total {figures['total']} differs from the platform's {figures['platform_total']} "
                      f"by {figures['difference']}; the rounding rule allows {figures['allowed']}",
                      **figures)
    return Mapped(body, kind=kind, **figures)  # type: ignore[arg-type]
