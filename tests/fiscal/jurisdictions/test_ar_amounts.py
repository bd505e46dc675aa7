"""Golden totals for every receipt class and rate mix (the worked examples of docs/jurisdictions/ar.md)."""
from __future__ import annotations

from decimal import Decimal

from stalela.fiscal.jurisdictions import get_jurisdiction
from tests.fiscal.ar_drafts import a_draft, ar_draft, ar_line, ar_original, c_line, ri_buyer

AR = get_jurisdiction("AR")


def wsfe(d, original=None) -> dict:
    return AR.compute(d, original).extra


def figures(extra: dict) -> tuple[str, ...]:
    keys = ("imp_neto", "imp_iva", "imp_op_ex", "imp_tot_conc", "imp_trib", "imp_total")
    return tuple(extra[k] for k in keys)


def test_1_a_net_two_rates():
    extra = wsfe(a_draft(ar_line("21", "2", "500.00"), ar_line("10.5", "3", "33.33")))
    # 10.5 %: 99.99 x 0.105 = 10.49895 -> 10.50
    assert figures(extra) == ("1099.99", "220.50", "0.00", "0.00", "0.00", "1320.49")
    assert extra["iva"] == [{"id": 4, "base_imp": "99.99", "importe": "10.50"},
                            {"id": 5, "base_imp": "1000.00", "importe": "210.00"}]
    assert (extra["cbte_tipo"], extra["letter"], extra["concept"]) == (1, "A", 1)


def test_2_a_net_every_rate():
    lines = [ar_line(r, "1", "100.00") for r in ("21", "10.5", "27", "5", "2.5", "0")]
    extra = wsfe(a_draft(*lines, ar_line("exento", "1", "50.00"),
                         ar_line("no_gravado", "1", "25.00")))
    assert figures(extra) == ("600.00", "66.00", "50.00", "25.00", "0.00", "741.00")
    assert extra["iva"] == [
        {"id": 3, "base_imp": "100.00", "importe": "0.00"},
        {"id": 4, "base_imp": "100.00", "importe": "10.50"},
        {"id": 5, "base_imp": "100.00", "importe": "21.00"},
        {"id": 6, "base_imp": "100.00", "importe": "27.00"},
        {"id": 8, "base_imp": "100.00", "importe": "5.00"},
        {"id": 9, "base_imp": "100.00", "importe": "2.50"},
    ]


def test_2b_totals_groups_follow_the_rate_table():
    computed = AR.compute(a_draft(ar_line("no_gravado", "1", "1.00"), ar_line("21", "1", "1.00"),
                                  ar_line("0", "1", "1.00"), ar_line("exento", "1", "1.00"),
                                  ar_line("10.5", "1", "1.00")))
    assert [g.group for g in computed.totals.groups] == ["0", "10.5", "21", "exento", "no_gravado"]
    g21 = computed.totals.group("21")
    assert (g21.rate, g21.amount, g21.base, g21.vat) == (Decimal("0.21"), Decimal("1.00"),
                                                         Decimal("1.00"), Decimal("0.21"))
    t = computed.totals
    assert (t.total, t.payable, t.vat_settled_by_credit) == (Decimal("5.32"),) * 2 + (0,)
    assert computed.extra["imp_total"] == "5.32"


def test_3_b_gross_one_rate():
    extra = wsfe(ar_draft(ar_line("21", "1", "121.00")))
    assert figures(extra) == ("100.00", "21.00", "0.00", "0.00", "0.00", "121.00")
    assert extra["iva"] == [{"id": 5, "base_imp": "100.00", "importe": "21.00"}]
    assert (extra["cbte_tipo"], extra["letter"], extra["doc_type"], extra["doc_number"],
            extra["buyer_vat_condition_id"]) == (6, "B", 99, "0", 5)


def test_4_b_gross_mix():
    # 21 %: 1000 x 21/121 = 173.553.. -> 173.55, base 826.45
    # 10.5 %: 500 x 0.105/1.105 = 47.511.. -> 47.51, base 452.49; exento 30.00
    extra = wsfe(ar_draft(ar_line("21", "2", "500.00"), ar_line("10.5", "1", "500.00"),
                          ar_line("exento", "3", "10.00")))
    assert figures(extra) == ("1278.94", "221.06", "30.00", "0.00", "0.00", "1530.00")
    assert extra["iva"] == [{"id": 4, "base_imp": "452.49", "importe": "47.51"},
                            {"id": 5, "base_imp": "826.45", "importe": "173.55"}]


def test_5_b_net_when_asked():
    computed = AR.compute(ar_draft(ar_line("21", "1", "100.00"), price_mode="net"))
    assert computed.price_mode == "net" and computed.extra["imp_total"] == "121.00"


def test_6_a_gross_when_asked():
    extra = wsfe(a_draft(ar_line("27", "1", "127.00"), price_mode="gross"))
    assert figures(extra) == ("100.00", "27.00", "0.00", "0.00", "0.00", "127.00")


def test_7_half_up_on_a_tie():
    # 0.50 x 0.21 = 0.105 and 1.00 x 0.105 = 0.105: exactly half a cent, rounded up.
    assert wsfe(a_draft(ar_line("21", "1", "0.50")))["imp_iva"] == "0.11"
    assert wsfe(a_draft(ar_line("10.5", "1", "1.00")))["imp_iva"] == "0.11"
    assert wsfe(a_draft(ar_line("2.5", "1", "0.20")))["imp_iva"] == "0.01"  # 0.005 -> 0.01


def test_8_iva_per_rate_not_per_line():
    # Three lines of 0.02 at 21 %: 0.0042 each would round to 0.00; the group's 0.06 gives 0.0126.
    extra = wsfe(a_draft(*[ar_line("21", "1", "0.02")] * 3))
    assert extra["imp_iva"] == "0.01" and extra["imp_total"] == "0.07"


def test_9_class_c():
    computed = AR.compute(ar_draft(c_line("2", "150.00"), c_line("1", "99.99"), type="11"))
    extra = computed.extra
    assert figures(extra) == ("399.99", "0.00", "0.00", "0.00", "0.00", "399.99")
    assert extra["iva"] == [] and (extra["cbte_tipo"], extra["letter"]) == (11, "C")
    assert [(g.group, g.base, g.vat) for g in computed.totals.groups] == \
        [("sin_iva", Decimal("399.99"), Decimal("0.00"))]
    assert computed.lines_as_json()[0]["vat_rate"] == "sin_iva"
    net = AR.compute(ar_draft(c_line("2", "150.00"), c_line("1", "99.99"), type="11",
                              price_mode="net"))
    assert net.extra == extra and net.price_mode == "net"


def test_10_dollars():
    computed = AR.compute(a_draft(ar_line("21", "1", "100.00"), ar_line("exento", "1", "9.99"),
                                  currency="DOL", exchange_rate=Decimal("1050.50")))
    extra = computed.extra
    assert (extra["currency"], extra["exchange_rate"]) == ("DOL", "1050.5")
    assert figures(extra) == ("100.00", "21.00", "9.99", "0.00", "0.00", "130.99")
    assert computed.currency == "DOL" and computed.exchange is None


def test_11_services():
    extra = wsfe(ar_draft(ar_line("21", "10", "12.10"), concept="services",
                          service_from="2026-11-01", service_to="2026-11-30",
                          payment_due="2026-12-10"))
    assert figures(extra)[-1] == "121.00"
    assert (extra["concept"], extra["service_from"], extra["service_to"],
            extra["payment_due"]) == (2, "2026-11-01", "2026-11-30", "2026-12-10")


def test_12_credit_note_a():
    computed = AR.compute(a_draft(ar_line("21", "1", "50.00"), type="3", original="inv_A41"),
                          ar_original(type="1", total="121.00"))
    assert figures(computed.extra) == ("50.00", "10.50", "0.00", "0.00", "0.00", "60.50")
    assert computed.extra["associated"] == [{"cbte_tipo": 1, "point_of_sale": 3, "number": 41,
                                             "cuit": "20267565393", "date": "2026-12-01"}]


def test_13_the_block_has_exactly_the_wsfe_keys():
    extra = wsfe(ar_draft(buyer=ri_buyer(vat_condition="exento")))
    assert list(extra) == [
        "cbte_tipo", "letter", "concept", "doc_type", "doc_number", "buyer_vat_condition_id",
        "currency", "exchange_rate", "imp_total", "imp_tot_conc", "imp_neto", "imp_op_ex",
        "imp_trib", "imp_iva", "iva", "service_from", "service_to", "payment_due", "associated",
    ]
    assert extra["associated"] is None


def test_14_as_json_carries_the_block_under_ar():
    computed = AR.compute(a_draft())
    document = computed.as_json()
    assert document["ar"] == computed.extra and document["jurisdiction"] == "AR"
    assert document["buyer"] == {"doc_type": "CUIT", "doc_number": "30000000007",
                                 "name": "Pampa Insumos SA",
                                 "vat_condition": "responsable_inscripto"}
    assert document["lines"][0] == {"index": 0, "description": "Artículo", "code": None,
                                    "vat_rate": "21", "quantity": "1", "unit_price": "100.00",
                                    "amount": "100.00"}
