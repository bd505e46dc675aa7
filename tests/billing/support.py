"""Helpers of the billing tests: unique plan ids (the databases are shared by every test)."""
from __future__ import annotations

from stalela.kit.ids import new_id


def plan_id(prefix: str = "p") -> str:
    return f"{prefix}-{new_id('x')[-12:].lower()}"


PRICES = {
    "api_calls": {"unit_price": "0.10", "per": 1000, "free": 100000},
    "invoices_sealed": {"free": 10, "tiers": [{"up_to": 100, "unit_price": "0.02"}, {"up_to": None, "unit_price": "0.01"}]},
}
