"""The shared arithmetic, on a made-up jurisdiction's groups, and the entry point."""
from __future__ import annotations

import hashlib
from decimal import Decimal

import pytest

from stalela.errors import FiscalRuleViolation
from stalela.fiscal.core.invoice import ComputedLine, lines_digest
from stalela.fiscal.core.rules import Jurisdiction, TaxGroup, compute_totals, group_base_and_vat
from stalela.fiscal import jurisdictions
from stalela.fiscal.jurisdictions import get_jurisdiction
from tests.fiscal.drafts import draft, line

D = Decimal
STANDARD = TaxGroup("S", "standard", D("0.20"))
EXEMPT = TaxGroup("Z", "exempt", D("0"))
LEVY = TaxGroup("V", "specific", D("0"), amount_is_vat=True)
CREDITED = TaxGroup("C", "credited", D("0.10"), settled_by_credit=True)
GROUPS = {g.letter: g for g in (STANDARD, EXEMPT, LEVY, CREDITED)}


@pytest.mark.parametrize(("amount", "group", "mode", "base", "vat"), [
    ("100.00", STANDARD, "ht", "100.00", "20.00"),
    ("120.00", STANDARD, "ttc", "100.00", "20.00"),
    ("0.03", STANDARD, "ht", "0.03", "0.01"),  # 0.006
    ("0.02", STANDARD, "ht", "0.02", "0.00"),  # 0.004
    ("100.00", EXEMPT, "ttc", "100.00", "0.00"),
    ("7.50", LEVY, "ht", "0.00", "7.50"),
    ("7.50", LEVY, "ttc", "0.00", "7.50"),
])
def test_group_base_and_vat(amount, group, mode, base, vat):
    assert group_base_and_vat(D(amount), group, mode) == (D(base), D(vat))


def computed_line(index, group, amount):
    return ComputedLine(index, "x", None, "BIE", group, D(1), D(amount), D(amount))


def test_compute_totals():
    lines = [computed_line(0, "S", "50.00"), computed_line(1, "C", "200.00"),
             computed_line(2, "V", "3.00"), computed_line(3, "S", "50.00")]
    totals = compute_totals(lines, GROUPS, "ht")
    assert [g.group for g in totals.groups] == ["C", "S", "V"]
    assert totals.group("S").vat == D("20.00")
    assert totals.group("Z") is None
    assert (totals.total, totals.vat_settled_by_credit, totals.payable) == (
        D("343.00"), D("20.00"), D("323.00"))


def test_lines_digest_is_sha256_of_rfc8785_json():
    lines = [{"index": 0, "quantity": "2.5", "description": "Café", "code": None}]
    canonical = '[{"code":null,"description":"Café","index":0,"quantity":"2.5"}]'.encode()
    assert lines_digest(lines) == hashlib.sha256(canonical).hexdigest()


def test_entry_point_resolves_the_jurisdiction_by_code():
    computed = jurisdictions.compute(draft(line("B", "1", "100")), jurisdiction="CD")
    assert computed.jurisdiction == "CD" and computed.total == D("116.00")
    assert jurisdictions.compute(draft(), jurisdiction=get_jurisdiction("CD")).total == D("116.00")
    assert jurisdictions.validate(draft()) is None
    with pytest.raises(FiscalRuleViolation):
        jurisdictions.validate(draft(type="XX"))
    with pytest.raises(KeyError):
        jurisdictions.compute(draft(), jurisdiction="ZZ")


def test_drc_satisfies_the_protocol():
    assert isinstance(get_jurisdiction("CD"), Jurisdiction)


def test_computed_invoice_json():
    body = jurisdictions.compute(draft(line("B", "1", "100"))).as_json()
    assert set(body) == {"jurisdiction", "type", "price_mode", "currency", "buyer", "nature",
                         "original", "lines", "totals", "payments", "exchange"}
    assert body["totals"]["total"] == "116.00"
