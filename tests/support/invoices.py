"""Sample invoice bodies for the API tests."""
from __future__ import annotations

from typing import Any


def sample_invoice(outlet: str, **overrides: Any) -> dict[str, Any]:
    body = {
        "outlet_id": outlet,
        "type": "FV",
        "lines": [
            {"description": "Sac de riz 25 kg", "item_type": "BIE", "tax_group": "B", "quantity": "2",
             "unit_price": "45000.00"},
            {"description": "Livraison", "item_type": "SER", "tax_group": "A", "quantity": "1", "unit_price": "5000"},
        ],
    }
    body.update(overrides)
    return body
