"""Argentina (ARCA, ex-AFIP: factura electrónica authorised by WSFEv1): the IVA engine.

Pure, like the DRC module it follows: the tables are data in `ar_data.py`, the checks run in a fixed
order and the first failure is raised as a `FiscalRuleViolation(code, field, detail)`, and the
result carries in ``extra`` exactly the figures WSFEv1's FECAEDetRequest wants (the sealing pipeline
adds the point of sale, the number and the date). Rules, sources and the order of the checks are in
docs/jurisdictions/ar.md.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any

from stalela.fiscal.core.invoice import (
    Buyer,
    ComputedInvoice,
    ComputedLine,
    DraftLine,
    InvoiceDraft,
    OriginalInvoice,
    Totals,
)
from stalela.fiscal.core.rules import (
    PRICE_MODE_HT,
    PRICE_MODE_TTC,
    check_decimal,
    check_line_text,
    check_quantity_and_price,
    checked_line_amount,
    compute_totals,
    fail,
    is_blank,
)
from stalela.fiscal.jurisdictions import ar_data as data
from stalela.fiscal.jurisdictions.ar_data import LIMITS, ReceiptType
from stalela.fiscal.jurisdictions.cuit import InvalidCuit, check_cuit
from stalela.kit.money import ZERO, decimal_str, money_context, money_str, round_money

_ZERO = Decimal("0")
# The core's arithmetic names the two modes after the DRC; the rounding is the same (kit.money).
_CORE_MODE = {data.PRICE_NET: PRICE_MODE_HT, data.PRICE_GROSS: PRICE_MODE_TTC}


class AR:
    code = data.CODE
    currency = data.CURRENCY
    invoice_types = frozenset(data.RECEIPT_TYPES)
    credit_note_types = data.CREDIT_NOTE_TYPES
    # Credit and debit notes both cite an original (CbtesAsoc); only credit notes reduce it.
    note_types = data.NOTE_TYPES
    tax_groups = data.TAX_GROUPS
    default_timezone = data.TIMEZONE
    original_by = "id"
    needs_point_of_sale = True

    def series_code(self, invoice_type: str) -> str:
        # ARCA numbers each (point of sale, CbteTipo) on its own: one series per receipt type.
        return invoice_type

    def fiscal_number(self, outlet_code: str, point_of_sale: int | None, invoice_type: str,
                      counter: int, generation: int = 1) -> str:
        """``B 00003-00000042``; after a realignment (generation k > 1) ``B 00003-00000042/k``: ARCA's
        number is the part before the slash, the suffix keeps Stalela's fiscal numbers unique when a
        realigned series hands out again a number a refused receipt was sealed with."""
        receipt = data.RECEIPT_TYPES.get(invoice_type)
        if receipt is None:
            raise ValueError(f"fiscal_number: {invoice_type!r} is not an AR receipt type")
        if isinstance(point_of_sale, bool) or not isinstance(point_of_sale, int) \
                or not 1 <= point_of_sale <= 99998:
            raise ValueError(f"fiscal_number: an AR outlet needs a point of sale 1-99998, "
                             f"got {point_of_sale!r}")
        if not 1 <= counter <= 99_999_999:
            raise ValueError(f"fiscal_number: ARCA numbers are 1-99999999, got {counter}")
        # Each type has its own numbers: a note's number repeats a factura's, so the kind is part of
        # the fiscal number (unique per tenant): "B 00003-00000042", "NC B 00003-00000001".
        prefix = data.NUMBER_PREFIX[receipt.kind]
        number = f"{prefix}{receipt.letter} {point_of_sale:05d}-{counter:08d}"
        return number if generation == 1 else f"{number}/{generation}"

    def original_types_for(self, credit_type: str) -> frozenset[str]:
        return data.ORIGINAL_TYPES.get(credit_type, frozenset())

    def letter(self, invoice_type: str) -> str:
        return data.RECEIPT_TYPES[invoice_type].letter

    def check_issue_date(self, invoice: ComputedInvoice, issue_date: date) -> None:
        """What depends on the receipt's date (CbteFch), known only to the sealer: ARCA refuses a
        payment due date before it (FchVtoPago), so it is refused here, before a number is used."""
        due = (invoice.extra or {}).get("payment_due")
        if due is not None and date.fromisoformat(due) < issue_date:
            raise fail("payment_due_before_receipt_date", "payment_due",
                       f"the payment is due on {due}, before the receipt's date {issue_date.isoformat()}")

    def validate(self, draft: InvoiceDraft, original: OriginalInvoice | None = None) -> None:
        self.compute(draft, original)

    def compute(
        self, draft: InvoiceDraft, original: OriginalInvoice | None = None
    ) -> ComputedInvoice:
        # The order is part of the contract (docs/jurisdictions/ar.md, "Order of the checks").
        _check_not_applicable(draft)
        receipt = _check_type(draft)
        _check_issuer(draft, receipt)
        price_mode = _check_price_mode(draft, receipt)
        currency, rate = _check_currency(draft)
        concept, service_dates = _check_concept(draft)
        _check_original_field(draft)
        buyer, doc_type, condition = _check_buyer(draft.buyer, receipt)
        lines = _check_lines(draft, receipt)
        totals = _totals(lines, price_mode)
        if totals.total >= LIMITS.max_amount:
            raise fail("total_too_large", "lines",
                       f"the total must be less than {LIMITS.max_amount}")
        _check_identification(receipt, doc_type, totals, rate)
        associated = _check_original(draft, original, receipt, totals, currency)
        return ComputedInvoice(
            jurisdiction=data.CODE,
            type=draft.type,
            price_mode=price_mode,
            currency=currency,
            lines=lines,
            totals=totals,
            buyer=buyer,
            nature=None,
            original=draft.original,
            payments=None,
            extra=_wsfe_block(receipt, concept, buyer, condition, currency, rate, totals,
                              service_dates, associated),
        )


# ------------------------------------------------------------------------------------ header

_OTHER_FIELDS = ("nature", "exchange", "payments")
_OTHER_BUYER_FIELDS = ("type", "tax_id", "exemption_ref")
_OTHER_LINE_FIELDS = ("item_type", "tax_group")


def _check_not_applicable(draft: InvoiceDraft) -> None:
    """The DRC's fields are refused, never ignored: a client sending them believes they count.
    Payments are not part of an Argentine receipt (WSFEv1 carries none)."""
    for name in _OTHER_FIELDS:
        if getattr(draft, name) is not None:
            raise fail("field_not_applicable", name, f"{name} is not a field of AR invoices")
    for name in _OTHER_BUYER_FIELDS:
        if draft.buyer is not None and getattr(draft.buyer, name) is not None:
            raise fail("field_not_applicable", f"buyer.{name}",
                       f"{name} is not a field of AR buyers (use doc_type and doc_number)")
    for i, line in enumerate(draft.lines):
        for name in _OTHER_LINE_FIELDS:
            if getattr(line, name) is not None:
                raise fail("field_not_applicable", f"lines[{i}].{name}",
                           f"AR lines use vat_rate, not {name}")


def _check_type(draft: InvoiceDraft) -> ReceiptType:
    receipt = data.RECEIPT_TYPES.get(draft.type) if isinstance(draft.type, str) else None
    if receipt is None:
        raise fail("invalid_invoice_type", "type",
                   f"{draft.type!r} is not one of {', '.join(data.RECEIPT_TYPES)} (CbteTipo)")
    return receipt


def _check_issuer(draft: InvoiceDraft, receipt: ReceiptType) -> None:
    letters = data.ISSUER_LETTERS.get(draft.issuer_vat_condition or "")
    if letters is None:
        # The caller passes the tenant's own condition, never the client's: a bad value is a bug
        # (or an AR tenant created without one), not something the client can correct.
        raise ValueError(f"issuer_vat_condition {draft.issuer_vat_condition!r} is not one of "
                         f"{', '.join(data.ISSUER_LETTERS)}")
    if receipt.letter not in letters:
        raise fail("letter_not_allowed", "type",
                   f"a {draft.issuer_vat_condition} issuer issues class "
                   f"{' and '.join(sorted(letters))} receipts, not {receipt.name}")


def _check_price_mode(draft: InvoiceDraft, receipt: ReceiptType) -> str:
    if draft.price_mode is None:
        return data.DEFAULT_PRICE_MODE[receipt.letter]
    if draft.price_mode not in data.PRICE_MODES:
        raise fail("invalid_price_mode", "price_mode",
                   f"{draft.price_mode!r} is not one of {', '.join(sorted(data.PRICE_MODES))}")
    return draft.price_mode


def _check_currency(draft: InvoiceDraft) -> tuple[str, Decimal]:
    currency = data.CURRENCY if draft.currency is None else draft.currency
    if currency not in data.CURRENCIES:
        raise fail("currency_unsupported", "currency",
                   f"{currency!r} is not one of {', '.join(sorted(data.CURRENCIES))} (ARCA MonId)")
    value = draft.exchange_rate
    if currency == data.CURRENCY:
        if value is not None and (isinstance(value, bool) or not isinstance(value, (Decimal, int))
                                  or not Decimal(value).is_finite()
                                  or Decimal(value) != data.PES_RATE):
            raise fail("exchange_rate_invalid", "exchange_rate",
                       f"a {data.CURRENCY} invoice has no exchange rate (or 1)")
        return currency, data.PES_RATE
    if value is None:
        raise fail("exchange_rate_required", "exchange_rate",
                   f"a {currency} invoice needs exchange_rate: pesos per 1 {currency}")
    rate = check_decimal(
        value, "exchange_rate", invalid_code="exchange_rate_invalid",
        precision_code="exchange_rate_invalid", places=LIMITS.exchange_rate_places,
        minimum=_ZERO, minimum_inclusive=False, maximum=LIMITS.max_exchange_rate,
    )
    return currency, rate


def _as_date(value: object) -> date | None:
    if isinstance(value, date):
        return value
    if isinstance(value, str) and len(value) == 10:  # fromisoformat also takes "20250101"
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    return None


def _check_concept(draft: InvoiceDraft) -> tuple[str, dict[str, date | None]]:
    concept = data.DEFAULT_CONCEPT if draft.concept is None else draft.concept
    if concept not in data.CONCEPTS:
        raise fail("invalid_concept", "concept",
                   f"{concept!r} is not one of {', '.join(data.CONCEPTS)}")
    dates: dict[str, date | None] = {name: None for name in data.SERVICE_DATE_FIELDS}
    if concept not in data.SERVICE_CONCEPTS:
        for name in data.SERVICE_DATE_FIELDS:
            if getattr(draft, name) is not None:
                raise fail("service_dates_not_allowed", name,
                           f"only services (concept services or both) carry {name}")
        return concept, dates
    for name in data.SERVICE_DATE_FIELDS:
        value = getattr(draft, name)
        if value is None:
            raise fail("service_dates_required", name,
                       f"concept {concept} needs service_from, service_to and payment_due")
        parsed = _as_date(value)
        if parsed is None:
            raise fail("service_date_invalid", name, "must be an ISO date (YYYY-MM-DD)")
        dates[name] = parsed
    start, end = dates["service_from"], dates["service_to"]
    assert start is not None and end is not None
    if start > end:
        raise fail("service_period_invalid", "service_to",
                   f"the service period ends ({end}) before it starts ({start})")
    return concept, dates


def _check_original_field(draft: InvoiceDraft) -> None:
    if draft.type not in data.NOTE_TYPES:
        if draft.original is not None:
            raise fail("original_not_allowed", "original",
                       f"only credit and debit notes cite an original, not {draft.type}")
        return
    if draft.original is None:
        raise fail("credit_note_original_required", "original",
                   "a credit or debit note cites the id of the receipt it corrects")
    if is_blank(draft.original) or len(draft.original) > 64:
        raise fail("credit_note_original_invalid", "original",
                   "must be an invoice id (1 to 64 characters, not blank)")


# ------------------------------------------------------------------------------------ buyer


def _check_buyer(buyer: Buyer | None, receipt: ReceiptType) -> tuple[Buyer, str, str]:
    """The buyer as sealed (normalised document number, condition defaulted), its doc type and
    its RG 5616 condition."""
    if buyer is None:
        if receipt.letter == "A":
            raise fail("class_a_requires_cuit", "buyer",
                       "an A receipt names its buyer by CUIT (doc_type CUIT)")
        normalized = Buyer(doc_type=data.CF_DOC, doc_number=data.CF_DOC_NUMBER,
                           vat_condition=data.CONSUMIDOR_FINAL)
        return normalized, data.CF_DOC, data.CONSUMIDOR_FINAL
    doc_type = buyer.doc_type
    if doc_type not in data.DOC_TYPES:
        raise fail("invalid_doc_type", "buyer.doc_type",
                   f"{doc_type!r} is not one of {', '.join(data.DOC_TYPES)}")
    doc_number = _check_doc_number(doc_type, buyer.doc_number)
    condition = buyer.vat_condition
    if condition is None and doc_type == data.CF_DOC:
        condition = data.CONSUMIDOR_FINAL
    if condition is None:
        raise fail("buyer_vat_condition_required", "buyer.vat_condition",
                   "an identified buyer needs its IVA condition (RG 5616)")
    if condition not in data.VAT_CONDITIONS:
        raise fail("invalid_buyer_vat_condition", "buyer.vat_condition",
                   f"{condition!r} is not one of {', '.join(data.VAT_CONDITIONS)}")
    name = buyer.name
    if name is not None and (is_blank(name) or len(name) > LIMITS.name_max):
        raise fail("buyer_name_invalid", "buyer.name",
                   f"when present, 1 to {LIMITS.name_max} characters and not blank")
    if receipt.letter == "A":
        if doc_type not in data.CLASS_A_DOC_TYPES:
            raise fail("class_a_requires_cuit", "buyer.doc_type",
                       "an A receipt names its buyer by CUIT (doc_type CUIT)")
        if name is None:
            raise fail("buyer_name_required", "buyer.name",
                       "an A receipt names its buyer (apellido y nombre or razón social)")
    allowed = data.CLASS_VAT_CONDITIONS[receipt.letter]
    if condition not in allowed:
        hint = " (an RI or monotributo buyer gets an A)" if receipt.letter == "B" else ""
        raise fail("buyer_vat_condition_not_allowed", "buyer.vat_condition",
                   f"ARCA does not accept a {condition} buyer on a class {receipt.letter} "
                   f"receipt{hint}")
    normalized = Buyer(doc_type=doc_type, doc_number=doc_number, vat_condition=condition,
                       name=name)
    return normalized, doc_type, condition


def _check_doc_number(doc_type: str, value: object) -> str:
    field = "buyer.doc_number"
    if doc_type == data.CF_DOC:
        if value is None or value == data.CF_DOC_NUMBER:
            return data.CF_DOC_NUMBER
        raise fail("invalid_doc_number", field,
                   "an unidentified consumidor final (CF) has no document number (or \"0\")")
    if doc_type in ("CUIT", "CUIL"):
        try:
            return check_cuit(value)
        except InvalidCuit as exc:
            code = "doc_number_check_digit" if exc.reason == "check_digit" else "invalid_doc_number"
            raise fail(code, field, f"{doc_type}: {exc.detail}") from None
    # DNI: 7 or 8 digits, no leading zero (DocNro is a number: "0123" would be sent as 123).
    if not isinstance(value, str) or len(value) not in data.DNI_LENGTHS \
            or not all("0" <= c <= "9" for c in value) or value[0] == "0":
        raise fail("invalid_doc_number", field, "a DNI is 7 or 8 digits, not starting with 0")
    return value


# ------------------------------------------------------------------------------------ lines


def _check_lines(draft: InvoiceDraft, receipt: ReceiptType) -> tuple[ComputedLine, ...]:
    count = len(draft.lines)
    if not LIMITS.min_lines <= count <= LIMITS.max_lines:
        raise fail("lines_count", "lines",
                   f"an invoice has {LIMITS.min_lines} to {LIMITS.max_lines} lines, got {count}")
    return tuple(_check_line(i, line, receipt.letter) for i, line in enumerate(draft.lines))


def _check_line(i: int, line: DraftLine, letter: str) -> ComputedLine:
    at = f"lines[{i}]"
    description, code = line.description, line.code
    check_line_text(at, description, code, LIMITS)
    if letter == "C":
        # A C receipt (monotributo, exento issuers) charges no IVA and breaks none down.
        if line.vat_rate is not None:
            raise fail("vat_rate_not_allowed", f"{at}.vat_rate",
                       "class C receipts carry no IVA: leave vat_rate out")
        rate = data.CLASS_C_RATE
    else:
        if line.vat_rate not in data.LINE_RATES:
            raise fail("invalid_vat_rate", f"{at}.vat_rate",
                       f"{line.vat_rate!r} is not one of {', '.join(data.LINE_RATES)}")
        rate = line.vat_rate
    quantity, unit_price = check_quantity_and_price(at, line.quantity, line.unit_price, LIMITS)
    amount = checked_line_amount(at, quantity, unit_price, LIMITS)
    return ComputedLine(
        index=i,
        description=description,
        code=code,
        item_type=None,
        tax_group=rate,
        quantity=quantity,
        unit_price=round_money(unit_price),
        amount=amount,
        vat_rate=rate,
    )


# ----------------------------------------------------------------------------------- totals


def _totals(lines: tuple[ComputedLine, ...], price_mode: str) -> Totals:
    """Per rate code: the amounts summed, then IVA computed and rounded once per rate (the core's
    arithmetic, kit.money's half-up rounding); groups listed in the order of the rate table."""
    totals = compute_totals(lines, data.TAX_GROUPS, _CORE_MODE[price_mode])
    ordered = tuple(sorted(totals.groups, key=lambda g: data.RATE_ORDER[g.group]))
    return replace(totals, groups=ordered)


def _wsfe_figures(totals: Totals) -> dict[str, Any]:
    """The FECAEDetRequest amounts; ImpTotal is their exact sum and equals ``totals.total``."""
    with money_context():
        neto = op_ex = tot_conc = iva = ZERO
        alic: list[dict[str, Any]] = []
        for g in totals.groups:
            kind = data.RATES[g.group].kind
            if kind == data.TAXED:
                neto += g.base
                iva += g.vat
                alic.append({"id": data.RATES[g.group].alic_iva_id, "base_imp": money_str(g.base),
                             "importe": money_str(g.vat)})
            elif kind == data.CLASS_C:
                neto += g.base  # a C receipt's whole amount is its "subtotal" in ImpNeto
            elif kind == data.EXEMPT:
                op_ex += g.base
            else:
                tot_conc += g.base
        trib = ZERO  # no tributos (percepciones, impuestos internos) yet
        total = tot_conc + neto + op_ex + trib + iva
    if total != totals.total:  # every group has base + vat in exactly one of the parts
        raise AssertionError(f"ImpTotal {total} differs from the total {totals.total}")
    alic.sort(key=lambda a: a["id"])
    return {
        "imp_total": money_str(total),
        "imp_tot_conc": money_str(tot_conc),
        "imp_neto": money_str(neto),
        "imp_op_ex": money_str(op_ex),
        "imp_trib": money_str(trib),
        "imp_iva": money_str(iva),
        "iva": alic,
    }


def _check_identification(receipt: ReceiptType, doc_type: str, totals: Totals,
                          rate: Decimal) -> None:
    threshold = data.CF_IDENTIFICATION_THRESHOLD
    if threshold is None or doc_type != data.CF_DOC or receipt.letter == "A":
        return
    with money_context():
        in_pesos = totals.total * rate
    if in_pesos >= threshold:
        raise fail("buyer_identification_required", "buyer",
                   f"this receipt comes to {money_str(in_pesos)} pesos; from "
                   f"{money_str(threshold)} a B or C receipt identifies its buyer "
                   "(doc_type CUIT, CUIL or DNI)")


# ---------------------------------------------------------------------------------- original


def _check_original(draft: InvoiceDraft, original: OriginalInvoice | None, receipt: ReceiptType,
                    totals: Totals, currency: str) -> list[dict[str, Any]] | None:
    if draft.type not in data.NOTE_TYPES:
        return None
    if original is None:
        raise fail("credit_note_original_not_found", "original",
                   f"no receipt {draft.original!r} was found for this tenant")
    allowed = data.ORIGINAL_TYPES[draft.type]
    if original.type not in allowed:
        names = ", ".join(data.RECEIPT_TYPES[t].name for t in sorted(allowed, key=int))
        raise fail("credit_note_original_type_mismatch", "original",
                   f"a {receipt.name} cites a {names}; {draft.original} is type {original.type}")
    block = original.extra or {}
    missing = [k for k in ("cbte_tipo", "point_of_sale", "number", "date") if block.get(k) is None]
    if missing:
        # The caller passes the original's sealed "ar" block: without it no CbtesAsoc can be sent.
        raise ValueError(f"OriginalInvoice.extra lacks {', '.join(missing)} for {draft.original}")
    if block.get("currency") not in (None, currency):
        raise fail("credit_note_currency_mismatch", "currency",
                   f"the note is in {currency}, its original in {block['currency']}")
    if draft.type in data.CREDIT_NOTE_TYPES:
        with money_context():
            remaining = original.total - original.credited_total
        if totals.total > remaining:
            raise fail("credit_note_exceeds_original", "original",
                       f"this credit note ({money_str(totals.total)}) exceeds what remains to be "
                       f"credited on {draft.original} ({money_str(max(remaining, _ZERO))})")
    when = block["date"]
    return [{
        "cbte_tipo": int(block["cbte_tipo"]),
        "point_of_sale": int(block["point_of_sale"]),
        "number": int(block["number"]),
        "cuit": block.get("cuit"),
        "date": when.isoformat() if isinstance(when, date) else str(when),
    }]


# ------------------------------------------------------------------------------------ output


def _wsfe_block(receipt: ReceiptType, concept: str, buyer: Buyer, condition: str, currency: str,
                rate: Decimal, totals: Totals, service_dates: dict[str, date | None],
                associated: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The JSON-ready ``ar`` block, without point_of_sale, number and date (added at sealing)."""
    assert buyer.doc_type is not None and buyer.doc_number is not None
    return {
        "cbte_tipo": receipt.cbte_tipo,
        "letter": receipt.letter,
        "concept": data.CONCEPTS[concept],
        "doc_type": data.DOC_TYPES[buyer.doc_type],
        "doc_number": buyer.doc_number,
        "buyer_vat_condition_id": data.VAT_CONDITIONS[condition],
        "currency": currency,
        "exchange_rate": decimal_str(rate),
        **_wsfe_figures(totals),
        **{name: (d.isoformat() if d is not None else None) for name, d in service_dates.items()},
        "associated": associated,
    }


JURISDICTION = AR()
