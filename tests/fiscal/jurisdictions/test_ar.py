"""Every AR rule: the exact rule code and field, and the neighbouring case that passes."""
from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest

from stalela.errors import FiscalRuleViolation
from stalela.fiscal.core.invoice import Buyer, Exchange, Payment
from stalela.fiscal.core.rules import Jurisdiction
from stalela.fiscal.jurisdictions import get_jurisdiction, jurisdiction_codes
from stalela.fiscal.jurisdictions.ar import AR as ARClass
from tests.fiscal.ar_drafts import (
    BUYER_CUIT,
    RI,
    SELLER_CUIT,
    a_draft,
    ar_draft,
    ar_line,
    ar_original,
    c_line,
    ri_buyer,
)
from tests.fiscal.drafts import draft, line

AR = get_jurisdiction("AR")


def violation(d, original=None) -> FiscalRuleViolation:
    with pytest.raises(FiscalRuleViolation) as info:
        AR.compute(d, original)
    return info.value


def assert_violation(d, code: str, field: str, original=None) -> None:
    err = violation(d, original)
    assert (err.code, err.field) == (code, field), err.detail


# ------------------------------------------------------------------------- jurisdiction api


def test_registered_and_a_jurisdiction():
    assert isinstance(AR, ARClass) and isinstance(AR, Jurisdiction)
    assert {"AR", "CD"} <= jurisdiction_codes()


def test_attributes():
    assert AR.code == "AR" and AR.currency == "PES"
    assert AR.default_timezone == "America/Argentina/Buenos_Aires"
    assert AR.original_by == "id" and AR.needs_point_of_sale is True
    assert AR.invoice_types == {"1", "2", "3", "6", "7", "8", "11", "12", "13"}
    assert AR.credit_note_types == {"3", "8", "13"}
    assert AR.note_types == {"2", "3", "7", "8", "12", "13"}
    assert set(AR.tax_groups) == {"21", "10.5", "27", "5", "2.5", "0", "exento", "no_gravado",
                                  "sin_iva"}
    assert AR.tax_groups["10.5"].rate == Decimal("0.105")
    assert AR.tax_groups["exento"].rate == 0


def test_original_types_stay_within_the_letter():
    assert AR.original_types_for("3") == {"1", "2"}
    assert AR.original_types_for("8") == {"6", "7"}
    assert AR.original_types_for("13") == {"11", "12"}
    assert AR.original_types_for("2") == {"1", "3"}
    assert AR.original_types_for("7") == {"6", "8"}
    assert AR.original_types_for("12") == {"11", "13"}
    assert AR.original_types_for("1") == frozenset()


def test_series_and_fiscal_number():
    assert AR.series_code("6") == "6"
    assert AR.fiscal_number("SHOP1", 3, "6", 42) == "B 00003-00000042"
    assert AR.fiscal_number("SHOP1", 99998, "1", 99_999_999) == "A 99998-99999999"
    assert AR.fiscal_number("X", 1, "13", 1) == "NC C 00001-00000001"  # a note's numbers repeat a factura's
    assert AR.fiscal_number("X", 1, "2", 1) == "ND A 00001-00000001"


@pytest.mark.parametrize(("pos", "type_", "counter"), [
    (None, "6", 1), (0, "6", 1), (99999, "6", 1), (True, "6", 1), (3, "FV", 1), (3, "6", 0),
    (3, "6", 100_000_000),
])
def test_fiscal_number_refuses_what_cannot_be_printed(pos, type_, counter):
    with pytest.raises(ValueError):
        AR.fiscal_number("SHOP1", pos, type_, counter)


# ------------------------------------------------------------------------ not applicable


@pytest.mark.parametrize(("field", "value"), [
    ("nature", "COR"),
    ("exchange", Exchange(currency="USD", rate=Decimal("1000"), date="2026-01-01")),
    ("payments", (Payment(method="ESPECES", amount=Decimal("121.00")),)),
])
def test_drc_fields_are_refused(field, value):
    assert_violation(ar_draft(**{field: value}), "field_not_applicable", field)


@pytest.mark.parametrize(("field", "value"), [("type", "PM"), ("tax_id", "A1"),
                                              ("exemption_ref", "X")])
def test_drc_buyer_fields_are_refused(field, value):
    buyer = Buyer(doc_type="CF", **{field: value})
    assert_violation(ar_draft(buyer=buyer), "field_not_applicable", f"buyer.{field}")


@pytest.mark.parametrize("field", ["item_type", "tax_group"])
def test_drc_line_fields_are_refused(field):
    assert_violation(ar_draft(ar_line(), ar_line(**{field: "B"})), "field_not_applicable",
                     f"lines[1].{field}")


def test_drc_refuses_vat_rate_lines():
    with pytest.raises(FiscalRuleViolation) as info:
        get_jurisdiction("CD").compute(draft(replace(line(), vat_rate="21")))
    assert info.value.code == "field_not_applicable"


# ------------------------------------------------------------------------------- header


@pytest.mark.parametrize("t", ["4", "FV", "", "06", None, "201"])
def test_invalid_invoice_type(t):
    assert_violation(ar_draft(type=t), "invalid_invoice_type", "type")


@pytest.mark.parametrize(("issuer", "type_"), [
    ("responsable_inscripto", "11"), ("responsable_inscripto", "13"),
    ("monotributo", "6"), ("monotributo", "1"), ("exento", "6"), ("exento", "3"),
])
def test_letter_not_allowed(issuer, type_):
    lines = (c_line(),) if type_ in ("11", "13") else (ar_line(),)
    assert_violation(ar_draft(*lines, type=type_, issuer_vat_condition=issuer,
                              buyer=ri_buyer()),
                     "letter_not_allowed", "type")


@pytest.mark.parametrize(("issuer", "type_"), [
    ("responsable_inscripto", "1"), ("responsable_inscripto", "6"), ("monotributo", "11"),
    ("exento", "11"),
])
def test_letters_allowed(issuer, type_):
    lines = (c_line(),) if type_ == "11" else (ar_line(),)
    buyer = ri_buyer() if type_ == "1" else None
    AR.compute(ar_draft(*lines, type=type_, issuer_vat_condition=issuer, buyer=buyer))


@pytest.mark.parametrize("issuer", [None, "", "consumidor_final", "RI"])
def test_unknown_issuer_condition_is_a_caller_bug(issuer):
    with pytest.raises(ValueError):
        AR.compute(ar_draft(issuer_vat_condition=issuer))


@pytest.mark.parametrize("mode", ["ht", "ttc", "NET", ""])
def test_invalid_price_mode(mode):
    assert_violation(ar_draft(price_mode=mode), "invalid_price_mode", "price_mode")


@pytest.mark.parametrize(("type_", "mode"), [("1", "net"), ("6", "gross"), ("11", "gross")])
def test_default_price_mode_by_letter(type_, mode):
    d = a_draft(type=type_) if type_ == "1" else ar_draft(type=type_)
    assert AR.compute(d).price_mode == mode


@pytest.mark.parametrize("currency", ["CDF", "ARS", "USD", "pes", ""])
def test_currency_unsupported(currency):
    assert_violation(ar_draft(currency=currency), "currency_unsupported", "currency")


def test_absent_currency_is_pesos():
    assert AR.compute(ar_draft(currency=None)).currency == "PES"


@pytest.mark.parametrize("rate", [Decimal("1"), Decimal("1.000"), 1, None])
def test_pesos_take_no_rate_or_one(rate):
    assert AR.compute(ar_draft(exchange_rate=rate)).extra["exchange_rate"] == "1"


@pytest.mark.parametrize("rate", [Decimal("2"), Decimal("0"), 1.0, True, Decimal("NaN"), Decimal("sNaN")])
def test_pesos_with_a_rate(rate):
    assert_violation(ar_draft(exchange_rate=rate), "exchange_rate_invalid", "exchange_rate")


def test_dollars_need_a_rate():
    assert_violation(ar_draft(currency="DOL"), "exchange_rate_required", "exchange_rate")


@pytest.mark.parametrize("rate", ["0", "-1", "1.0000001", "1000000000", "NaN", 1050.5])
def test_dollar_rate_invalid(rate):
    r = Decimal(rate) if isinstance(rate, str) else rate
    assert_violation(ar_draft(currency="DOL", exchange_rate=r), "exchange_rate_invalid",
                     "exchange_rate")


def test_dollar_rate_with_six_places():
    computed = AR.compute(ar_draft(currency="DOL", exchange_rate=Decimal("1050.123456")))
    assert computed.extra["exchange_rate"] == "1050.123456"
    assert computed.currency == "DOL" and computed.extra["currency"] == "DOL"


# ------------------------------------------------------------------------------ concept


@pytest.mark.parametrize("concept", ["product", "1", "Services", ""])
def test_invalid_concept(concept):
    assert_violation(ar_draft(concept=concept), "invalid_concept", "concept")


SERVICE = {"service_from": "2026-11-01", "service_to": "2026-11-30", "payment_due": "2026-12-10"}


@pytest.mark.parametrize("field", list(SERVICE))
def test_products_carry_no_service_dates(field):
    assert_violation(ar_draft(concept="products", **{field: SERVICE[field]}),
                     "service_dates_not_allowed", field)
    assert_violation(ar_draft(**{field: SERVICE[field]}), "service_dates_not_allowed", field)


@pytest.mark.parametrize("concept", ["services", "both"])
@pytest.mark.parametrize("field", list(SERVICE))
def test_service_dates_required(concept, field):
    fields = {**SERVICE, field: None}
    assert_violation(ar_draft(concept=concept, **fields), "service_dates_required", field)


@pytest.mark.parametrize("value", ["2026-13-01", "20261101", "01/11/2026", "", 20261101])
def test_service_date_invalid(value):
    assert_violation(ar_draft(concept="services", **{**SERVICE, "payment_due": value}),
                     "service_date_invalid", "payment_due")


def test_service_period_invalid():
    assert_violation(ar_draft(concept="services", **{**SERVICE, "service_to": "2026-10-31"}),
                     "service_period_invalid", "service_to")


def test_services_accept_dates_and_strings():
    a = AR.compute(ar_draft(concept="both", **SERVICE)).extra
    b = AR.compute(ar_draft(concept="both", service_from=date(2026, 11, 1),
                            service_to=date(2026, 11, 30), payment_due=date(2026, 12, 10))).extra
    assert a == b
    assert (a["concept"], a["service_from"], a["service_to"], a["payment_due"]) == \
        (3, "2026-11-01", "2026-11-30", "2026-12-10")
    one_day = AR.compute(ar_draft(concept="services", **{**SERVICE, "service_to": "2026-11-01"}))
    assert one_day.extra["concept"] == 2


# ------------------------------------------------------------------------- original field


def test_original_not_allowed_on_an_invoice():
    assert_violation(ar_draft(original="inv_1"), "original_not_allowed", "original")


@pytest.mark.parametrize("t", ["2", "3", "7", "8"])
def test_note_original_required(t):
    assert_violation(a_draft(type=t) if t in "23" else ar_draft(type=t),
                     "credit_note_original_required", "original")


@pytest.mark.parametrize("original", ["", "  ", "x" * 65])
def test_note_original_invalid(original):
    assert_violation(ar_draft(type="8", original=original), "credit_note_original_invalid",
                     "original")


# -------------------------------------------------------------------------------- buyer


def test_absent_buyer_is_consumidor_final():
    computed = AR.compute(ar_draft())
    assert computed.buyer == Buyer(doc_type="CF", doc_number="0", vat_condition="consumidor_final")
    ar = computed.extra
    assert (ar["doc_type"], ar["doc_number"], ar["buyer_vat_condition_id"]) == (99, "0", 5)


@pytest.mark.parametrize("number", [None, "0"])
def test_cf_buyer(number):
    computed = AR.compute(ar_draft(buyer=Buyer(doc_type="CF", doc_number=number, name="Juan")))
    assert computed.buyer == Buyer(doc_type="CF", doc_number="0", name="Juan",
                                   vat_condition="consumidor_final")


@pytest.mark.parametrize("doc_type", ["cuit", "PASAPORTE", "80", "", None])
def test_invalid_doc_type(doc_type):
    assert_violation(ar_draft(buyer=Buyer(doc_type=doc_type, doc_number="12345678")),
                     "invalid_doc_type", "buyer.doc_type")


@pytest.mark.parametrize(("doc_type", "number"), [
    ("CF", "12345678"), ("CF", ""), ("CUIT", "3000000000"), ("CUIL", "20 26756539 3"),
    ("CUIT", None), ("DNI", "123456"), ("DNI", "123456789"), ("DNI", "01234567"),
    ("DNI", "1234567a"), ("DNI", None), ("DNI", "１２３４５６７８"),
])
def test_invalid_doc_number(doc_type, number):
    buyer = Buyer(doc_type=doc_type, doc_number=number, vat_condition="consumidor_final")
    assert_violation(ar_draft(buyer=buyer), "invalid_doc_number", "buyer.doc_number")


@pytest.mark.parametrize("doc_type", ["CUIT", "CUIL"])
def test_doc_number_check_digit(doc_type):
    buyer = Buyer(doc_type=doc_type, doc_number="20267565394", vat_condition="exento")
    assert_violation(ar_draft(buyer=buyer), "doc_number_check_digit", "buyer.doc_number")


def test_doc_numbers_are_normalized():
    cuit = Buyer(doc_type="CUIL", doc_number="20-26756539-3", vat_condition="consumidor_final")
    assert AR.compute(ar_draft(buyer=cuit)).extra["doc_number"] == "20267565393"
    dni = Buyer(doc_type="DNI", doc_number="1234567", vat_condition="consumidor_final")
    extra = AR.compute(ar_draft(buyer=dni)).extra
    assert (extra["doc_type"], extra["doc_number"]) == (96, "1234567")


@pytest.mark.parametrize("doc_type", ["CUIT", "DNI"])
def test_buyer_vat_condition_required(doc_type):
    number = BUYER_CUIT if doc_type == "CUIT" else "12345678"
    assert_violation(ar_draft(buyer=Buyer(doc_type=doc_type, doc_number=number)),
                     "buyer_vat_condition_required", "buyer.vat_condition")


@pytest.mark.parametrize("condition", ["RI", "monotributista", "Consumidor_Final", ""])
def test_invalid_buyer_vat_condition(condition):
    assert_violation(ar_draft(buyer=Buyer(doc_type="CF", vat_condition=condition)),
                     "invalid_buyer_vat_condition", "buyer.vat_condition")


@pytest.mark.parametrize("name", ["", "   ", "x" * 201])
def test_buyer_name_invalid(name):
    assert_violation(ar_draft(buyer=Buyer(doc_type="CF", name=name)), "buyer_name_invalid",
                     "buyer.name")


def test_class_a_requires_a_buyer():
    assert_violation(ar_draft(type="1"), "class_a_requires_cuit", "buyer")


@pytest.mark.parametrize(("doc_type", "number"), [("CUIL", "20267565393"), ("DNI", "12345678"),
                                                  ("CF", None)])
def test_class_a_requires_cuit(doc_type, number):
    assert_violation(a_draft(buyer=ri_buyer(doc_type=doc_type, doc_number=number)),
                     "class_a_requires_cuit", "buyer.doc_type")


def test_class_a_names_its_buyer():
    assert_violation(a_draft(buyer=ri_buyer(name=None)), "buyer_name_required", "buyer.name")


A_CONDITIONS = ["responsable_inscripto", "monotributo", "monotributista_social",
                "monotributo_trabajador_independiente"]
B_CONDITIONS = ["exento", "consumidor_final", "no_categorizado", "proveedor_exterior",
                "cliente_exterior", "iva_liberado", "no_alcanzado"]
IDS = {"responsable_inscripto": 1, "exento": 4, "consumidor_final": 5, "monotributo": 6,
       "no_categorizado": 7, "proveedor_exterior": 8, "cliente_exterior": 9, "iva_liberado": 10,
       "monotributista_social": 13, "no_alcanzado": 15,
       "monotributo_trabajador_independiente": 16}


@pytest.mark.parametrize("condition", A_CONDITIONS)
def test_class_a_conditions(condition):
    extra = AR.compute(a_draft(buyer=ri_buyer(vat_condition=condition))).extra
    assert extra["buyer_vat_condition_id"] == IDS[condition]
    assert (extra["doc_type"], extra["doc_number"]) == (80, BUYER_CUIT)


@pytest.mark.parametrize("condition", B_CONDITIONS)
def test_conditions_not_allowed_on_a(condition):
    assert_violation(a_draft(buyer=ri_buyer(vat_condition=condition)),
                     "buyer_vat_condition_not_allowed", "buyer.vat_condition")


@pytest.mark.parametrize("condition", B_CONDITIONS)
def test_class_b_conditions(condition):
    extra = AR.compute(ar_draft(buyer=ri_buyer(vat_condition=condition))).extra
    assert extra["buyer_vat_condition_id"] == IDS[condition]


@pytest.mark.parametrize("condition", A_CONDITIONS)
def test_conditions_not_allowed_on_b(condition):
    # An RI buyer must get an A, and so must a monotributista (RG 5003; ARCA's table for class B).
    assert_violation(ar_draft(buyer=ri_buyer(vat_condition=condition)),
                     "buyer_vat_condition_not_allowed", "buyer.vat_condition")


@pytest.mark.parametrize("condition", list(IDS))
def test_class_c_takes_every_condition(condition):
    extra = AR.compute(ar_draft(type="11", buyer=ri_buyer(vat_condition=condition))).extra
    assert extra["buyer_vat_condition_id"] == IDS[condition]


def test_unidentified_consumer_threshold():
    # RG 5824 (as given; see docs): from ARS 10,000,000 a B or C receipt identifies its buyer.
    below = ar_draft(ar_line("21", "1", "9999999.99"))
    assert AR.compute(below).total == Decimal("9999999.99")
    at = ar_draft(ar_line("21", "1", "10000000.00"))
    assert_violation(at, "buyer_identification_required", "buyer")
    assert_violation(ar_draft(c_line("1", "10000000.00"), type="11"),
                     "buyer_identification_required", "buyer")
    dni = Buyer(doc_type="DNI", doc_number="12345678", vat_condition="consumidor_final")
    AR.compute(ar_draft(ar_line("21", "1", "10000000.00"), buyer=dni))


def test_threshold_counts_dollars_in_pesos():
    d = ar_draft(ar_line("21", "1", "10000.00"), currency="DOL", exchange_rate=Decimal("1000"))
    assert_violation(d, "buyer_identification_required", "buyer")
    AR.compute(ar_draft(ar_line("21", "1", "9999.99"), currency="DOL",
                        exchange_rate=Decimal("1000")))


# -------------------------------------------------------------------------------- lines


@pytest.mark.parametrize("n", [0, 1001])
def test_lines_count(n):
    assert_violation(replace(ar_draft(), lines=(ar_line(),) * n), "lines_count", "lines")


def test_a_thousand_lines_accepted():
    computed = AR.compute(ar_draft(*[ar_line("21", "1", "1.21")] * 1000))
    assert computed.total == Decimal("1210.00") and computed.extra["imp_iva"] == "210.00"


@pytest.mark.parametrize("description", ["", "   ", "x" * 201, None])
def test_description_length(description):
    assert_violation(ar_draft(ar_line(), ar_line(description=description)),
                     "description_length", "lines[1].description")


@pytest.mark.parametrize("code", ["", " ", "x" * 65])
def test_line_code_invalid(code):
    assert_violation(ar_draft(ar_line(code=code)), "line_code_invalid", "lines[0].code")


@pytest.mark.parametrize("rate", ["21%", "0.21", "10,5", "exempt", "sin_iva", "", None])
def test_invalid_vat_rate(rate):
    assert_violation(ar_draft(ar_line(rate)), "invalid_vat_rate", "lines[0].vat_rate")
    assert_violation(a_draft(ar_line(), ar_line(rate)), "invalid_vat_rate", "lines[1].vat_rate")


@pytest.mark.parametrize("rate", ["21", "0", "exento", "no_gravado", "sin_iva"])
def test_vat_rate_not_allowed_on_c(rate):
    assert_violation(ar_draft(c_line(), ar_line(rate), type="11"), "vat_rate_not_allowed",
                     "lines[1].vat_rate")


@pytest.mark.parametrize("quantity", ["0", "-1", "NaN", "-Infinity", 1.5, True])
def test_quantity_invalid(quantity):
    q = Decimal(quantity) if isinstance(quantity, str) else quantity
    assert_violation(ar_draft(ar_line(quantity=q)), "quantity_invalid", "lines[0].quantity")


def test_quantity_precision_and_size():
    assert_violation(ar_draft(ar_line(quantity="1.0005")), "quantity_precision",
                     "lines[0].quantity")
    assert_violation(ar_draft(ar_line(quantity="1000000000000")), "quantity_too_large",
                     "lines[0].quantity")
    AR.compute(ar_draft(ar_line(quantity="1.5000")))


@pytest.mark.parametrize("price", ["-0.01", "NaN", 0.5])
def test_unit_price_invalid(price):
    p = Decimal(price) if isinstance(price, str) else price
    assert_violation(ar_draft(ar_line(unit_price=p)), "unit_price_invalid", "lines[0].unit_price")


def test_unit_price_precision_and_size():
    assert_violation(ar_draft(ar_line(unit_price="1.005")), "unit_price_precision",
                     "lines[0].unit_price")
    assert_violation(ar_draft(ar_line(unit_price="10000000000000")), "unit_price_too_large",
                     "lines[0].unit_price")
    assert AR.compute(ar_draft(ar_line(unit_price="0"))).total == 0


def test_amount_bounds():
    assert_violation(ar_draft(ar_line("exento", "2", "6000000000000"), buyer=ri_buyer(
        vat_condition="exento")), "line_amount_too_large", "lines[0]")
    big = ar_line("exento", "1", "6000000000000")
    assert_violation(ar_draft(big, big, buyer=ri_buyer(vat_condition="exento")),
                     "total_too_large", "lines")
    # Net 21 %: 9e12 + IVA passes 10^13 only in the total.
    assert_violation(a_draft(ar_line("21", "1", "9000000000000")), "total_too_large", "lines")


# ----------------------------------------------------------------------------- originals


def credit_a(*lines, original="inv_A41", **kw):
    return a_draft(*(lines or (ar_line("21", "1", "100.00"),)), type="3", original=original, **kw)


def test_original_not_found():
    assert_violation(credit_a(), "credit_note_original_not_found", "original", original=None)


@pytest.mark.parametrize(("note", "original_type"), [
    ("3", "6"), ("3", "11"), ("3", "3"), ("2", "2"), ("2", "6"),
])
def test_original_type_mismatch(note, original_type):
    assert_violation(a_draft(type=note, original="inv_1"), "credit_note_original_type_mismatch",
                     "original", original=ar_original(type=original_type))


@pytest.mark.parametrize(("note", "original_type"), [("3", "1"), ("3", "2"), ("2", "1"),
                                                     ("2", "3")])
def test_original_types_accepted(note, original_type):
    computed = AR.compute(a_draft(type=note, original="inv_1"), ar_original(type=original_type))
    assert computed.extra["associated"] == [{"cbte_tipo": int(original_type), "point_of_sale": 3,
                                             "number": 41, "cuit": SELLER_CUIT,
                                             "date": "2026-12-01"}]
    assert computed.original == "inv_1"


def test_credit_may_take_exactly_what_remains():
    computed = AR.compute(credit_a(), ar_original(total="1210.00", credited="1089.00"))
    assert computed.total == Decimal("121.00")


def test_credit_note_exceeds_original():
    assert_violation(credit_a(ar_line("21", "1", "100.01")), "credit_note_exceeds_original",
                     "original", original=ar_original(total="1210.00", credited="1089.00"))


def test_a_debit_note_is_not_capped():
    AR.compute(a_draft(ar_line("21", "1", "5000.00"), type="2", original="inv_1"),
               ar_original(total="121.00"))


def test_note_currency_follows_its_original():
    assert_violation(credit_a(), "credit_note_currency_mismatch", "currency",
                     original=ar_original(currency="DOL"))


def test_associated_without_cuit_and_with_a_date_object():
    computed = AR.compute(credit_a(), ar_original(cuit=None, date=date(2026, 12, 1)))
    assert computed.extra["associated"][0]["cuit"] is None
    assert computed.extra["associated"][0]["date"] == "2026-12-01"


@pytest.mark.parametrize("key", ["cbte_tipo", "point_of_sale", "number", "date"])
def test_original_without_its_ar_block_is_a_caller_bug(key):
    with pytest.raises(ValueError):
        AR.compute(credit_a(), ar_original(**{key: None}))


def test_c_credit_note():
    computed = AR.compute(ar_draft(c_line("1", "50.00"), type="13", original="inv_C1"),
                          ar_original(type="11", total="100.00"))
    assert computed.extra["associated"][0]["cbte_tipo"] == 11
    assert computed.extra["iva"] == [] and computed.extra["imp_neto"] == "50.00"


# ------------------------------------------------------------------------------ order


def test_first_failure_wins_in_the_documented_order():
    d = ar_draft(ar_line("99"), type="1", issuer_vat_condition=RI, price_mode="x", currency="EUR",
                 concept="x")
    assert violation(d).code == "invalid_price_mode"
    d = ar_draft(ar_line("99"), currency="EUR", concept="x")
    assert violation(d).code == "currency_unsupported"
    d = ar_draft(ar_line("99"), concept="x", buyer=Buyer(doc_type="x"))
    assert violation(d).code == "invalid_concept"
    d = ar_draft(ar_line("99"), original="inv_1", buyer=Buyer(doc_type="x"))
    assert violation(d).code == "original_not_allowed"
    d = ar_draft(ar_line("99"), buyer=Buyer(doc_type="x"))
    assert violation(d).code == "invalid_doc_type"
