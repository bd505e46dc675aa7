"""Every DRC rule: the exact rule code and field, and the neighbouring case that passes."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from stalela.errors import FiscalRuleViolation, ValidationFailed
from stalela.fiscal.core.invoice import Buyer, Exchange, InvoiceDraft, OriginalInvoice
from stalela.fiscal.jurisdictions import get_jurisdiction
from stalela.fiscal.jurisdictions.drc import DRC
from tests.fiscal.drafts import company, draft, embassy, line, pay

CD = get_jurisdiction("CD")


def violation(d, original=None) -> FiscalRuleViolation:
    with pytest.raises(FiscalRuleViolation) as info:
        CD.compute(d, original)
    return info.value


def assert_violation(d, code: str, field: str, original=None) -> None:
    err = violation(d, original)
    assert (err.code, err.field) == (code, field), err.detail


def test_violation_is_a_422_problem_with_the_field():
    err = violation(draft(type="XX"))
    assert isinstance(err, ValidationFailed) and err.status == 422
    problem = err.problem()
    assert problem["code"] == "invalid_invoice_type"
    assert problem["field"] == "type"
    assert problem["errors"] == [{"field": "type", "code": "invalid_invoice_type",
                                  "detail": err.detail}]


# ------------------------------------------------------------------------------------ header


@pytest.mark.parametrize("t", ["FV", "FT", "EV", "ET"])
def test_sale_types_accepted(t):
    group = "E" if t.startswith("E") else "B"
    CD.compute(draft(line(group), type=t))


@pytest.mark.parametrize("t", ["XX", "fv", "", None])
def test_invalid_invoice_type(t):
    assert_violation(draft(type=t), "invalid_invoice_type", "type")


@pytest.mark.parametrize("mode", ["HT", "tva", ""])
def test_invalid_price_mode(mode):
    assert_violation(draft(price_mode=mode), "invalid_price_mode", "price_mode")


def test_absent_price_mode_is_ht():
    assert DRC().compute(draft(price_mode=None)).price_mode == "ht"


@pytest.mark.parametrize("field,value", [("concept", "products"), ("exchange_rate", Decimal("1")),
                                         ("service_from", "2026-01-01")])
def test_argentine_fields_are_refused(field, value):
    assert_violation(draft(**{field: value}), "field_not_applicable", field)


@pytest.mark.parametrize("currency", ["USD", "cdf", ""])
def test_currency_unsupported(currency):
    assert_violation(draft(currency=currency), "currency_unsupported", "currency")


def usd(rate="2850.5", when="2025-03-01", currency="USD") -> Exchange:
    rate = Decimal(rate) if isinstance(rate, str) else rate
    return Exchange(currency=currency, rate=rate, date=when)


def test_exchange_accepts_iso_string_or_date():
    a = CD.compute(draft(exchange=usd(when="2025-03-01")))
    b = CD.compute(draft(exchange=usd(when=date(2025, 3, 1))))
    assert a.exchange == b.exchange
    assert a.exchange_as_json()["date"] == "2025-03-01"


@pytest.mark.parametrize("currency", ["EUR", "usd", "CDF"])
def test_exchange_currency(currency):
    assert_violation(draft(exchange=usd(currency=currency)), "exchange_invalid",
                     "exchange.currency")


@pytest.mark.parametrize("rate", ["0", "-1", "0.0000001", "1000000000", "NaN", "Infinity", 2850.5])
def test_exchange_rate(rate):
    assert_violation(draft(exchange=usd(rate=rate)), "exchange_invalid", "exchange.rate")


@pytest.mark.parametrize("when", ["2025-13-01", "01/03/2025", "20250301", "", None])
def test_exchange_date(when):
    assert_violation(draft(exchange=usd(when=when)), "exchange_invalid", "exchange.date")


# ----------------------------------------------------------------------------- credit notes


def test_nature_not_allowed_on_a_sale():
    assert_violation(draft(nature="COR"), "nature_not_allowed", "nature")


def test_original_not_allowed_on_a_sale():
    assert_violation(draft(original="SHOP1-00000001"), "original_not_allowed", "original")


@pytest.mark.parametrize("t", ["FA", "EA"])
def test_credit_note_nature_required(t):
    group = "E" if t == "EA" else "B"
    assert_violation(draft(line(group), type=t, original="SHOP1-00000001"),
                     "credit_note_nature_required", "nature")


def test_invalid_nature():
    assert_violation(draft(type="FA", nature="XXX", original="SHOP1-00000001"),
                     "invalid_nature", "nature")


@pytest.mark.parametrize("nature", ["COR", "RAN", "RAM"])
def test_credit_note_original_required(nature):
    assert_violation(draft(type="FA", nature=nature), "credit_note_original_required", "original")


def test_rrr_needs_no_original():
    computed = CD.compute(draft(type="FA", nature="RRR"))
    assert computed.original is None and computed.nature == "RRR"


@pytest.mark.parametrize("original", ["", "SHOP1", "SHOP1-42", "SHOP 1-00000001"])
def test_credit_note_original_invalid(original):
    assert_violation(draft(type="FA", nature="COR", original=original),
                     "credit_note_original_invalid", "original")


def sale(number="SHOP1-00000007", type="FV", total="1160.00", credited="0.00") -> OriginalInvoice:
    return OriginalInvoice(fiscal_number=number, type=type, total=Decimal(total),
                           credited_total=Decimal(credited))


def credit_note(*lines, type="FA", nature="COR", original="SHOP1-00000007", **kw):
    return draft(*lines, type=type, nature=nature, original=original, **kw)


def test_credit_note_original_not_found():
    assert_violation(credit_note(), "credit_note_original_not_found", "original", original=None)


@pytest.mark.parametrize(("credit", "original_type", "group"), [
    ("FA", "EV", "B"), ("FA", "FA", "B"), ("EA", "FV", "E"), ("EA", "EA", "E"),
])
def test_credit_note_original_type_mismatch(credit, original_type, group):
    assert_violation(credit_note(line(group), type=credit), "credit_note_original_type_mismatch",
                     "original", original=sale(type=original_type))


@pytest.mark.parametrize(("credit", "original_type", "group"), [
    ("FA", "FV", "B"), ("FA", "FT", "B"), ("EA", "EV", "E"), ("EA", "ET", "E"),
])
def test_credit_note_original_types_accepted(credit, original_type, group):
    CD.compute(credit_note(line(group), type=credit), sale(type=original_type))


def test_credit_note_may_credit_exactly_what_remains():
    # 100.00 + 16 % = 116.00; 1044.00 already credited on an original of 1160.00
    computed = CD.compute(credit_note(line("B", "1", "100.00")),
                          sale(total="1160.00", credited="1044.00"))
    assert computed.total == Decimal("116.00")


def test_credit_note_exceeds_original():
    assert_violation(credit_note(line("B", "1", "100.01")), "credit_note_exceeds_original",
                     "original", original=sale(total="1160.00", credited="1044.00"))


def test_rrr_citing_an_original_is_checked_like_the_others():
    assert_violation(credit_note(line("B", "1", "2000"), nature="RRR"),
                     "credit_note_exceeds_original", "original", original=sale())


def test_original_for_another_number_is_a_caller_bug():
    with pytest.raises(ValueError):
        CD.compute(credit_note(), sale(number="SHOP1-00000008"))


def test_credit_note_amounts_are_positive():
    computed = CD.compute(credit_note(line("B", "1", "100.00")), sale())
    assert computed.totals_as_json()["total"] == "116.00"


# ------------------------------------------------------------------------------------ buyer


def test_absent_buyer_is_an_anonymous_natural_person():
    assert CD.compute(draft()).buyer is None
    CD.compute(draft(buyer=Buyer(type="PP")))


@pytest.mark.parametrize("t", ["XX", "pm", ""])
def test_invalid_buyer_type(t):
    assert_violation(draft(buyer=Buyer(type=t)), "invalid_buyer_type", "buyer.type")


@pytest.mark.parametrize("t", ["PM", "PC", "PL"])
@pytest.mark.parametrize("name", [None, "", "   "])
def test_buyer_name_required(t, name):
    assert_violation(draft(buyer=company(type=t, name=name)), "buyer_name_required", "buyer.name")


@pytest.mark.parametrize("t", ["PM", "PC", "PL"])
@pytest.mark.parametrize("tax_id", [None, " "])
def test_buyer_tax_id_required(t, tax_id):
    assert_violation(draft(buyer=company(type=t, tax_id=tax_id)), "buyer_tax_id_required",
                     "buyer.tax_id")


def test_ao_buyer_name_required():
    assert_violation(draft(buyer=embassy(name=None)), "buyer_name_required", "buyer.name")


def test_buyer_exemption_ref_required():
    assert_violation(draft(buyer=embassy(exemption_ref="")), "buyer_exemption_ref_required",
                     "buyer.exemption_ref")


def test_ao_buyer_needs_no_tax_id():
    CD.compute(draft(buyer=embassy()))


# ------------------------------------------------------------------------------------ lines


@pytest.mark.parametrize("n", [0, 1001])
def test_lines_count(n):
    assert_violation(InvoiceDraft(type="FV", lines=(line(),) * n), "lines_count", "lines")


def test_a_thousand_lines_accepted():
    computed = CD.compute(draft(*[line("B", "1", "1.00")] * 1000))
    assert computed.total == Decimal("1160.00")
    assert computed.lines[-1].index == 999


@pytest.mark.parametrize("description", ["", "   ", "x" * 201, None])
def test_description_length(description):
    assert_violation(draft(line(), line(description=description)),
                     "description_length", "lines[1].description")


def test_description_of_200_characters_accepted():
    CD.compute(draft(line(description="é" * 200)))


@pytest.mark.parametrize("code", ["", " ", "x" * 65])
def test_line_code_invalid(code):
    assert_violation(draft(line(code=code)), "line_code_invalid", "lines[0].code")


@pytest.mark.parametrize("item_type", ["GOODS", "bie", ""])
def test_invalid_item_type(item_type):
    assert_violation(draft(line(item_type=item_type)), "invalid_item_type", "lines[0].item_type")


@pytest.mark.parametrize("group", ["O", "P", "b", "", "AB"])
def test_invalid_tax_group(group):
    assert_violation(draft(line(group, item_type="BIE")), "invalid_tax_group", "lines[0].tax_group")


@pytest.mark.parametrize("quantity", ["0", "-1", "NaN", "-Infinity", 1.5, True])
def test_quantity_invalid(quantity):
    q = Decimal(quantity) if isinstance(quantity, str) else quantity
    assert_violation(draft(line(quantity=q)), "quantity_invalid", "lines[0].quantity")


def test_quantity_precision():
    assert_violation(draft(line(quantity="1.0005")), "quantity_precision", "lines[0].quantity")


def test_quantity_precision_ignores_trailing_zeros():
    computed = CD.compute(draft(line(quantity="1.5000")))
    assert computed.lines_as_json()[0]["quantity"] == "1.5"


def test_integer_quantity_accepted():
    computed = CD.compute(draft(line(quantity=Decimal(2))))
    assert computed.lines_as_json()[0]["quantity"] == "2"


def test_quantity_too_large():
    assert_violation(draft(line(quantity="1000000000000")), "quantity_too_large",
                     "lines[0].quantity")


@pytest.mark.parametrize("price", ["-0.01", "NaN", 0.5])
def test_unit_price_invalid(price):
    p = Decimal(price) if isinstance(price, str) else price
    assert_violation(draft(line(unit_price=p)), "unit_price_invalid", "lines[0].unit_price")


def test_zero_unit_price_accepted():
    assert CD.compute(draft(line(unit_price="0"))).total == Decimal("0.00")


def test_unit_price_precision():
    assert_violation(draft(line(unit_price="1.005")), "unit_price_precision", "lines[0].unit_price")


def test_unit_price_too_large():
    assert_violation(draft(line(unit_price="10000000000000000")), "unit_price_too_large",
                     "lines[0].unit_price")


def test_line_amount_too_large():
    assert_violation(draft(line("A", "2", "6000000000000000")), "line_amount_too_large", "lines[0]")


def test_total_too_large():
    big = line("A", "1", "6000000000000000")
    assert_violation(draft(big, big), "total_too_large", "lines")


@pytest.mark.parametrize("group", ["L", "N"])
@pytest.mark.parametrize("item_type", ["BIE", "SER"])
def test_goods_line_group_invalid(item_type, group):
    assert_violation(draft(line("M"), line(group, item_type=item_type)),
                     "goods_line_group_invalid", "lines[1].tax_group")


@pytest.mark.parametrize("group", list("ABCDEFGHIJKM"))
def test_tax_line_group_invalid(group):
    assert_violation(draft(line(group, item_type="TAX")), "tax_line_group_invalid",
                     "lines[0].tax_group")


def test_tax_line_in_group_l_accepted():
    CD.compute(draft(line("B"), line("L", "1", "50.00", item_type="TAX")))


@pytest.mark.parametrize("t", ["FV", "FT"])
def test_group_e_requires_export(t):
    assert_violation(draft(line("E"), type=t), "group_e_requires_export", "lines[0].tax_group")


def test_group_e_requires_export_on_domestic_credit_note():
    assert_violation(credit_note(line("E"), nature="RRR", original=None),
                     "group_e_requires_export", "lines[0].tax_group")


@pytest.mark.parametrize("t", ["EV", "ET"])
@pytest.mark.parametrize("item_type", ["BIE", "SER"])
def test_export_line_not_group_e(t, item_type):
    assert_violation(draft(line("E"), line("B", item_type=item_type), type=t),
                     "export_line_not_group_e", "lines[1].tax_group")


def test_export_credit_note_line_not_group_e():
    assert_violation(credit_note(line("A"), type="EA", nature="RRR", original=None),
                     "export_line_not_group_e", "lines[0].tax_group")


def test_export_invoice_may_carry_levies():
    computed = CD.compute(draft(line("E", "2", "500.00"), line("L", "1", "10.00"), type="EV"))
    assert computed.total == Decimal("1010.00")


@pytest.mark.parametrize("buyer", [None, Buyer(type="PP"), company()])
def test_group_d_requires_ao_buyer(buyer):
    assert_violation(draft(line("B"), line("D"), buyer=buyer), "group_d_requires_ao_buyer",
                     "lines[1].tax_group")


def test_group_d_for_an_embassy():
    computed = CD.compute(draft(line("D", "1", "1000.00"), buyer=embassy()))
    assert computed.totals_as_json()["groups"] == [
        {"group": "D", "rate": "0", "amount": "1000.00", "base": "1000.00", "vat": "0.00"}
    ]


def test_group_n_without_m():
    assert_violation(draft(line("B"), line("N", "1", "16.00")), "group_n_without_m",
                     "lines[1].tax_group")


def test_group_n_with_m_after_it_accepted():
    CD.compute(draft(line("N", "1", "16.00"), line("M", "1", "100.00")))


# --------------------------------------------------------------------------------- payments


def test_payments_adding_up_to_payable_accepted():
    # F: 1000 + 160 VAT settled by credit; B: 100 + 16. Payable = 1276 - 160 = 1116.
    d = draft(line("F", "1", "1000"), line("B", "1", "100"),
              payments=(pay("ESPECES", "116.00"), pay("MOBILEMONEY", "1000")))
    computed = CD.compute(d)
    assert computed.payments_as_json() == [
        {"method": "ESPECES", "amount": "116.00"}, {"method": "MOBILEMONEY", "amount": "1000.00"}
    ]


@pytest.mark.parametrize("method", ["CASH", "especes", ""])
def test_invalid_payment_method(method):
    assert_violation(draft(payments=(pay("ESPECES", "16"), pay(method, "100"))),
                     "invalid_payment_method", "payments[1].method")


@pytest.mark.parametrize("amount", ["-0.01", "NaN", "10000000000000000"])
def test_payment_amount_invalid(amount):
    assert_violation(draft(payments=(pay("ESPECES", amount),)), "payment_amount_invalid",
                     "payments[0].amount")


def test_payment_amount_precision():
    assert_violation(draft(payments=(pay("ESPECES", "116.001"),)), "payment_amount_precision",
                     "payments[0].amount")


@pytest.mark.parametrize("amounts", [["115.99"], ["116.01"], [], ["100", "15"]])
def test_payments_mismatch(amounts):
    assert_violation(draft(payments=tuple(pay("ESPECES", a) for a in amounts)),
                     "payments_mismatch", "payments")


def test_payments_must_equal_payable_not_total():
    d = draft(line("F", "1", "1000"), payments=(pay("VIREMENT", "1160"),))
    assert_violation(d, "payments_mismatch", "payments")


def test_zero_payment_for_a_free_invoice():
    CD.compute(draft(line(unit_price="0"), payments=(pay("AUTRE", "0"),)))


# ------------------------------------------------------------------------------ determinism


def test_first_bad_line_is_reported():
    d = draft(line(), line(quantity="0"), line(unit_price="-1"))
    assert_violation(d, "quantity_invalid", "lines[1].quantity")


def test_checks_within_a_line_run_in_field_order():
    d = draft(line(description="", quantity="0", unit_price="-1"))
    assert_violation(d, "description_length", "lines[0].description")


def test_header_before_buyer_before_lines_before_payments():
    d = draft(line(quantity="0"), buyer=Buyer(type="XX"), payments=(pay("XX", "1"),),
              currency="USD")
    assert_violation(d, "currency_unsupported", "currency")
    d = draft(line(quantity="0"), buyer=Buyer(type="XX"), payments=(pay("XX", "1"),))
    assert_violation(d, "invalid_buyer_type", "buyer.type")
    d = draft(line(quantity="0"), payments=(pay("XX", "1"),))
    assert_violation(d, "quantity_invalid", "lines[0].quantity")


def test_same_draft_same_error():
    d = draft(line("D"), line("E"), line("N"))
    codes = {(violation(d).code, violation(d).field) for _ in range(5)}
    assert codes == {("group_d_requires_ao_buyer", "lines[0].tax_group")}


def test_validate_returns_none_or_raises():
    assert CD.validate(draft()) is None
    with pytest.raises(FiscalRuleViolation):
        CD.validate(draft(type="XX"))


# ------------------------------------------------------------------------- jurisdiction api


def test_jurisdiction_attributes():
    assert CD.code == "CD" and CD.currency == "CDF"
    assert CD.credit_note_types == {"FA", "EA"}
    assert CD.invoice_types == {"FV", "FT", "FA", "EV", "ET", "EA"}
    assert CD.original_types_for("FA") == {"FV", "FT"}
    assert CD.original_types_for("EA") == {"EV", "ET"}
    assert CD.original_types_for("FV") == frozenset()
    assert sorted(CD.tax_groups) == list("ABCDEFGHIJKLMN")


def test_registry():
    assert isinstance(CD, DRC)
    with pytest.raises(KeyError):
        get_jurisdiction("XX")
