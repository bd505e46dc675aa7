"""What the fixture walk and the property tests share: reading the golden files, the options per
jurisdiction, and an independent recomputation of a mapped body with the jurisdiction's engine."""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from stalela.connectors.mapping import MappingOptions, merge_pack
from stalela.fiscal.core.invoice import ComputedInvoice, OriginalInvoice, draft_from_request
from stalela.fiscal.invoices.schemas import InvoiceCreate
from stalela.fiscal.jurisdictions import get_jurisdiction

FIXTURES = Path(__file__).parent / "fixtures"
OUTLETS = {"CD": "out_cd_kinshasa", "AR": "out_ar_pv3"}
# Every fixture maps with these unless its <case>.options.json says otherwise for that jurisdiction.
BASE_OPTIONS: dict[str, dict[str, Any]] = {
    "CD": {"exchange_rates": {"USD": {"rate": "2850.50", "date": "2026-11-20"}}},
    "AR": {"issuer_vat_condition": "responsable_inscripto",
           "exchange_rates": {"USD": {"rate": "1050.50", "date": "2026-11-20"}}},
}
# The platform's own figure for what the buyer paid, read straight from the fixture.
PLATFORM_TOTAL = {"shopify": "total_price", "mercadolibre": "total_amount", "tiendanube": "total", "woocommerce": "total"}


def load(path: Path) -> Any:
    # As the connector will: JSON numbers (Mercado Libre's amounts) become Decimal, never float.
    return json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)


def order_of(platform: str, case: str) -> dict[str, Any]:
    order = load(FIXTURES / platform / f"{case}.order.json")
    return merge_pack(order) if isinstance(order, list) else order


def billing_info_of(platform: str, case: str) -> dict[str, Any] | None:
    path = FIXTURES / platform / f"{case}.billing_info.json"
    return load(path) if path.exists() else None


def options_of(platform: str, case: str, jurisdiction: str) -> MappingOptions:
    settings = dict(BASE_OPTIONS[jurisdiction])
    path = FIXTURES / platform / f"{case}.options.json"
    if path.exists():
        settings.update(json.loads(path.read_text(encoding="utf-8")).get(jurisdiction, {}))
    return MappingOptions.from_json(settings)


def engine_compute(body: dict[str, Any], jurisdiction: str, options: MappingOptions,
                   original: OriginalInvoice | None = None) -> ComputedInvoice:
    """The body as POST /v1/invoices would take it: validated by the API schema, then computed."""
    request = InvoiceCreate.model_validate(body)
    rules = get_jurisdiction(jurisdiction)
    draft = draft_from_request(request.model_dump(), rules.currency, options.issuer_vat_condition)
    return rules.compute(draft, original)


def assert_no_float(value: Any, at: str = "$") -> None:
    assert not isinstance(value, float), f"a float at {at}: {value!r}"
    if isinstance(value, dict):
        for k, v in value.items():
            assert_no_float(v, f"{at}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            assert_no_float(v, f"{at}[{i}]")
