"""The golden fixtures (issue 20, item 4): every platform order under fixtures/<platform>/ mapped to each
jurisdiction it has an expected file for, compared with that file exactly.

Files per case: ``<case>.order.json`` (a list: a Mercado Libre pack, merged first), optionally
``<case>.billing_info.json`` (Mercado Libre) and ``<case>.options.json`` (per jurisdiction, over
support.BASE_OPTIONS); ``<case>.<J>.expected.json`` is map_order's answer for jurisdiction J, and
``<case>.<J>.original.json`` with ``<case>.<J>.credit_note.expected.json`` credit_note_for's.

To add a case: write its order, create an empty expected file, run with STALELA_REGEN_FIXTURES=1, and
read what was written before committing it (the point of a golden file is that a person checked it).
"""
from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path

import pytest

from stalela.connectors.mapping import credit_note_for, map_order
from stalela.fiscal.core.invoice import OriginalInvoice
from tests.connectors.mapping.support import (
    FIXTURES,
    OUTLETS,
    PLATFORM_TOTAL,
    assert_no_float,
    billing_info_of,
    engine_compute,
    load,
    options_of,
    order_of,
)

REGEN = os.environ.get("STALELA_REGEN_FIXTURES") == "1"


def _expected_files() -> list[Path]:
    return sorted(FIXTURES.glob("*/*.expected.json"))


def _parse(path: Path) -> tuple[str, str, str, bool]:
    case, jurisdiction, *rest = path.name.removesuffix(".expected.json").split(".")
    return path.parent.name, case, jurisdiction, rest == ["credit_note"]


def _dump(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


@pytest.mark.parametrize("path", _expected_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_golden(path: Path) -> None:
    platform, case, jurisdiction, is_credit_note = _parse(path)
    order = order_of(platform, case)
    options = options_of(platform, case, jurisdiction)
    if is_credit_note:
        original_doc = load(FIXTURES / platform / f"{case}.{jurisdiction}.original.json")
        result = credit_note_for(original_doc, platform, order, jurisdiction=jurisdiction, options=options)
    else:
        result = map_order(platform, order, jurisdiction=jurisdiction, outlet_id=OUTLETS[jurisdiction],
                           options=options, billing_info=billing_info_of(platform, case))
    got = result.as_json()
    assert_no_float(got)
    if REGEN:
        path.write_text(_dump(got), encoding="utf-8")
    assert got == json.loads(path.read_text(encoding="utf-8")), _dump(got)

    if result.outcome != "mapped":
        return
    # The body is one the API takes, and the engine the sealing pipeline runs gives the figures the
    # mapping reported, within the rounding rule of the platform's own total.
    if is_credit_note:
        original = OriginalInvoice(fiscal_number=original_doc.get("fiscal_number") if jurisdiction == "CD"
                                   else original_doc["id"], type=original_doc["type"],
                                   total=Decimal(original_doc["totals"]["total"]), extra=original_doc.get("ar"))
        computed = engine_compute(got["body"], jurisdiction, options, original)
        assert computed.totals.total == Decimal(original_doc["totals"]["total"])
        return
    computed = engine_compute(got["body"], jurisdiction, options)
    ours = computed.exchange.total_foreign if computed.exchange is not None else computed.totals.total
    assert str(ours) == got["total"]
    platform_total = Decimal(str(order[PLATFORM_TOTAL[platform]]))
    assert str(platform_total.quantize(Decimal("0.01"))) == got["platform_total"]
    assert abs(ours - platform_total) <= Decimal(got["allowed"])
    # The rule never allows more than a cent per line plus two (the order's own, a conversion's).
    assert Decimal(got["allowed"]) <= Decimal("0.01") * (len(got["body"]["lines"]) + 2)


def test_every_case_has_an_expectation() -> None:
    """An order fixture nobody expects anything of is a case silently not tested."""
    expected = {(p.parent.name, _parse(p)[1]) for p in _expected_files()}
    orders = {(p.parent.name, p.name.removesuffix(".order.json")) for p in FIXTURES.glob("*/*.order.json")}
    assert orders <= expected, sorted(orders - expected)


def test_cases_cover_every_outcome_on_every_platform() -> None:
    by_platform: dict[str, set[str]] = {}
    for path in _expected_files():
        result = json.loads(path.read_text(encoding="utf-8"))
        label = result.get("reason") or result.get("kind")
        by_platform.setdefault(path.parent.name, set()).add(f"{result['outcome']}:{label}")
    for platform, seen in by_platform.items():
        assert {"mapped:invoice", "parked:totals_mismatch", "mapped:credit_note"} <= seen, (platform, seen)
        assert seen & {"skipped:refunded", "skipped:cancelled"}, (platform, seen)
    assert set(by_platform) == {"shopify", "mercadolibre", "tiendanube", "woocommerce"}
