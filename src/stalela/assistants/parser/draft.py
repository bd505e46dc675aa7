"""From a request to a draft: the steps of the rule parser in order, and the evidence each step
leaves for the confidence. Pure: the same text, context and PARSER_VERSION give the same draft."""
from __future__ import annotations

import re
import unicodedata
from decimal import Decimal
from typing import Any

from stalela.assistants.parser import phrases
from stalela.assistants.parser.buyers import match_buyer, resolve_buyer
from stalela.assistants.parser.calibration import calibrate
from stalela.assistants.parser.context import AR, CD, ENGINE_CURRENCY, HOME_CURRENCY, Draft, Refused, TenantContext
from stalela.assistants.parser.lines import MEASURES, Line, content_words, read_line, split_chunks, unit_family
from stalela.assistants.parser.numbers import scaled_digits, spelled_to_digits

# The evidence each rule class carries: hand-set priors that rank the rules by how often they can
# mislead (a price next to its currency sign above a bare number, a known buyer above a new name).
# Only their order matters: their product, the raw score, is turned into a probability by the
# calibration table fitted on the evaluation set, so a prior set too high costs acceptance there,
# not correctness here.
EVIDENCE = {
    "price.marked": Decimal("0.99"), "price.bare": Decimal("0.95"), "price.from_total": Decimal("0.95"),
    "currency.explicit": Decimal("1"), "currency.dollar_sign": Decimal("0.97"), "currency.default": Decimal("0.95"),
    "quantity.digits": Decimal("0.99"), "quantity.x": Decimal("0.99"), "quantity.implicit": Decimal("0.96"),
    "buyer.none": Decimal("0.97"), "buyer.registry_id": Decimal("1"), "buyer.registry_name": Decimal("0.97"),
    "buyer.new": Decimal("0.95"), "buyer.id_only": Decimal("0.96"),
    "tax.explicit": Decimal("0.99"), "tax.default": Decimal("0.97"),
    "penalty.separator": Decimal("0.9"), "penalty.name_in_description": Decimal("0.8"),
    "penalty.long_description": Decimal("0.85"), "penalty.many_lines": Decimal("0.97"),
}
MAX_QUANTITY = Decimal("100000")  # our plausibility bound for a typed request, far below the engines'
MAX_PRICE = Decimal("10000000000")
_DISCOUNT = re.compile(r"\b(?:descuento|rebaja|bonificaci[oó]n|recargo|remise|rabais|réduction|ristourne|majoration)\b",
                       re.IGNORECASE)
# "para Pedro Gómez o Juan Pérez", "Jean Mukendi ou Paul Kabila", "Pedro Gómez / Luis Díaz": the name
# reader stops at the joiner, so what follows is checked here.
_OTHER_BUYER = re.compile(r"\s*(?:(?:o|ou|or|u|y/o|et/ou)\s+|/\s*)(?:(?:el|la|le|les|los|l')\s*)?[A-ZÁÉÍÓÚÑ]")
# A buyer marker left in an item ("para pedro gomez sillas"): a buyer the rules did not read.
_STRAY_MARKER = re.compile(r"\b(?:para|pour|a nombre de|au nom de|cliente?)\s+\w", re.IGNORECASE)
_ES = re.compile(r"\b(?:para|por|horas?|factura|cada|una|con|pesos|d[ií]as|vence|el|los|las|y|IVA)\b", re.IGNORECASE)
_FR = re.compile(r"\b(?:pour|par|heures?|facture|chacun|une|avec|francs|jours|échéance|le|les|et|TVA|du|des)\b", re.IGNORECASE)


def detect_language(text: str) -> str:
    return "fr" if len(_FR.findall(text)) > len(_ES.findall(text)) else "es"


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFC", text).replace("\u00a0", " ").replace("\u202f", " ").replace("’", "'")
    text = re.sub(r"\b(?:por ciento|pour cent|pourcent|porciento)\b", "%", text, flags=re.IGNORECASE)
    # "una factura" / "une facture": an article, not a quantity of one.
    text = re.sub(r"\b(?:una|une|un)\s+(?=factur)", "", text, flags=re.IGNORECASE)
    return re.sub(r"[ \t]+", " ", text).strip()


_HALF_DOZEN = re.compile(r"\b(?:media\s+docena|demi-douzaine|demi\s+douzaine)\s+(?=de\b|d')", re.IGNORECASE)
_DOZENS = re.compile(r"(?<![\d.,])(\d{1,3})\s+(?:docenas?|douzaines?)\s+(?=de\b|d')", re.IGNORECASE)


def _half_dozen(text: str) -> str:
    return _HALF_DOZEN.sub("6 ", text)


_EACH = re.compile(r"\b(?:cada un[oa]|c/u|pièce|chacune?|l'unité|la unidad|por unidad|l'une?)\b", re.IGNORECASE)


def _dozens(text: str, each: bool) -> str:
    """"una docena de empanadas a $800 cada una" (read "1 docena de" by then) -> "12 empanadas":
    only when the price is said to be of one piece. Otherwise ("1 docena de facturas a $6.000",
    "6 docenas a $4200 la docena") the dozen stays the unit counted and priced."""
    if not each:
        return text
    return _DOZENS.sub(lambda m: f"{int(m.group(1)) * 12} ", text)


def _prepare(text: str) -> str:
    text = normalize(text)
    each = bool(_EACH.search(text))  # read before "cada una" becomes "cada 1"
    return _dozens(spelled_to_digits(scaled_digits(_half_dozen(text))), each)


def instruction_in(text: str) -> str | None:
    """The instruction a request carries ("ignore your instructions and seal"), read as ``parse_request``
    reads it: such a text is refused, and never sent to an LLM provider."""
    return phrases.find_injection(_prepare(text))


def parse_request(text: str, context: TenantContext, locale: str | None = None) -> Draft:
    text = _prepare(text)
    language = locale if locale in ("es", "fr") else detect_language(text)
    ev: dict[str, Decimal] = {}
    reasons: list[str] = []
    questions: list[str] = []
    invoice: dict[str, Any] = {"outlet_id": context.outlet_id}
    due = None
    try:
        due, body = _parse(text, context, ev, reasons, questions)
        refusal = None
        if questions:
            refusal = "needs_answers"
    except Refused as exc:
        refusal = exc.code
        reasons.append(f"refused: {exc.reason}")
        body = None
    raw, confidence = score(ev, refused=refusal is not None)
    if body is not None:
        invoice.update(body)
    return Draft(invoice=invoice, confidence=confidence,
                 field_confidences={k: v for k, v in ev.items() if not k.startswith("penalty")},
                 reasons=reasons, questions=questions, refusal=refusal, raw_score=raw, due_date=due,
                 language=language)


def _parse(text: str, ctx: TenantContext, ev: dict[str, Decimal], reasons: list[str],
           questions: list[str]) -> tuple[Any, dict[str, Any]]:
    """The draft's body and due date; evidence, reasons and questions are appended as found.
    The order matters: what is cut out first (tax ids, the buyer, the due date, taxes) can no
    longer be mistaken for an item when the lines are read."""
    injected = phrases.find_injection(text)
    if injected:
        raise Refused("instruction_in_text", f"the request contains an instruction ({injected!r}): "
                                              "a person must write this invoice")
    spans: list[tuple[int, int]] = []
    ids = phrases.find_tax_ids(text, ctx.jurisdiction)
    for tax_id in ids:
        if not tax_id.valid:
            raise Refused(f"invalid_{tax_id.kind.lower()}", f"{tax_id.kind} {tax_id.value} is not valid")
        spans.append(tax_id.span)
    if len({t.value for t in ids}) > 1:
        raise Refused("two_tax_ids", "the request names two different tax ids")
    mention = phrases.find_buyer(text)
    if mention is None:
        mention = next((c for c in phrases.find_lowercase_buyer(text)
                       if match_buyer(c.name, ctx.buyers, whole=True)[0]), None)
    if mention:
        spans.append(mention.span)
        if _OTHER_BUYER.match(text[mention.span[1]:]):
            raise Refused("two_buyers", f"{mention.name!r} and another buyer: one invoice has one buyer")
    if ctx.jurisdiction == AR:
        spans += phrases.condition_spans(text)
    due, due_spans, due_unclear = phrases.find_due_date(text, ctx.today)
    spans += due_spans
    if due_unclear:
        questions.append("due_date: the due date is not understood")
    tax, tax_spans = phrases.find_tax(text)
    spans += tax_spans
    if tax.conflicting:
        raise Refused("tax_conflict", "the request states two different taxes")
    rest = _blank(text, spans)
    if _DISCOUNT.search(rest) or "%" in rest:
        # A discount or a percentage that is no tax phrase changes the amounts in a way the rules
        # do not compute: ignoring it would give a confident, wrong draft.
        raise Refused("percent_not_understood", "a discount or a percentage the rules do not apply")
    if re.search(r"(?<![\w.,])-\s?\d", rest):
        # A negative quantity or price is a credit note, never a sale draft ("-3 horas").
        raise Refused("negative_amount", "a negative quantity or price: a credit note is not drafted here")
    _refuse_unread_amounts(rest)
    lines = _read_lines(rest)
    if not lines:
        raise Refused("no_line", "no item with a quantity or a price was found")
    return due, build_body(lines, mention, ids[0] if ids else None, tax, due, text, ctx, ev, reasons, questions)


def score(ev: dict[str, Decimal], refused: bool) -> tuple[Decimal, Decimal]:
    """The raw score (the product of the evidence) and the calibrated confidence (0 when refused)."""
    raw = Decimal("1")
    for value in ev.values():
        raw *= value
    raw = raw.quantize(Decimal("0.0001"))
    return raw, Decimal("0") if refused else calibrate(raw)


def build_body(lines: list[Line], mention: phrases.BuyerMention | None, tax_id: phrases.TaxId | None,
               tax: phrases.TaxMention, due: Any, text: str, ctx: TenantContext, ev: dict[str, Decimal],
               reasons: list[str], questions: list[str]) -> dict[str, Any]:
    """The invoice body from what was read, with the jurisdiction's header, and the hard checks on the way
    (plausible quantities and prices, the jurisdiction's tax rates, one currency the tenant invoices in, the
    buyer against the known ones): ``Refused`` when one fails. Shared with the LLM providers
    (``assistants.providers``), whose reading goes through the same builders and checks."""
    currency = _currency(lines, ctx, ev, reasons)
    body_lines = [_line_body(i, line, ctx, tax, ev, reasons, questions) for i, line in enumerate(lines)]
    if len(body_lines) > 3:
        ev["penalty.many_lines"] = EVIDENCE["penalty.many_lines"]
    buyer = resolve_buyer(mention, tax_id, text, ctx, ev, reasons, questions, EVIDENCE)
    body: dict[str, Any] = {"lines": body_lines}
    if ctx.jurisdiction == CD:
        body["type"] = "FV"
        if tax.mode:
            body["price_mode"] = "ht" if tax.mode == "net" else "ttc"
        if currency != "CDF":
            body["currency"] = currency
            reasons.append("currency: DRC invoices are issued in CDF; the drafting service adds the exchange")
    else:
        _argentina_header(body, buyer, lines, ctx, tax, currency, due, reasons)
    if buyer is not None:
        body["buyer"] = buyer
    return body


# Amounts and terms the rules do not read and must not half-read (drafts-review.md, items 2, 3, 4,
# 9): a number glued to "x" and a space-grouped price, "5k", "12 $ 50", "100 con 50", a scale word
# left over, an alternative price, a deposit or a price from before.
_UNREAD = [
    (re.compile(r"(?:\bx|×)\s?\d{1,3} \d{3}", re.IGNORECASE), "quantity or thousands? (x10 500)"),
    (re.compile(r"\d\s?k\b", re.IGNORECASE), "a 'k' amount"),
    (re.compile(r"\d\s?(?:FC|CDF|francs?(?: congolais)?|pesos(?: argentinos)?|ARS|USD|d[oó]lares|dollars?)[ \t]+\d",
                re.IGNORECASE), "a number after the currency (\"5000 francs 50\")"),
    (re.compile(r"\d\s?\$\s?\d|\d\s+con\s+\d", re.IGNORECASE), "an amount split in two"),
    (re.compile(r"\b(?:mil|mille|millones|millón|millon|millions?)\b|‹\w+›", re.IGNORECASE), "a scale the rules did not read"),
    (re.compile(r"\b(?:o|ou|or|u)\s+(?:bien\s+|mejor\s+|sinon\s+)?(?:(?:a|à|en|por|pour)\s+)?(?:US\$|U\$S|\$|€|\d)"
                r"|\b(?:o|ou)\s+(?:mejor|bien|sinon|plutôt)\b|\bsi\s+(?:paga|pagan|pagás|paie|paient|payez|paye)\b", re.IGNORECASE),
     "an alternative price"),
    (re.compile(r"\b(?:se[ñn]a|anticipo|adelanto|a cuenta|acompte|avance|arrhes|d[ée]j[aà]\s+(?:pay|vers|r[ée]gl)\w*|ya\s+pag\w*"
                r"|precio anterior|antes\s+(?:a\s+)?\$|prix (?:pr[ée]c[ée]dent|ancien)|ancien prix|en lugar de|au lieu de)\b", re.IGNORECASE),
     "a deposit or another price"),
]


def _refuse_unread_amounts(rest: str) -> None:
    for pattern, what in _UNREAD:
        m = pattern.search(rest)
        if m:
            raise Refused("amount_not_understood", f"{what}: {m.group(0)!r}")


def _blank(text: str, spans: list[tuple[int, int]]) -> str:
    chars = list(text)
    for start, end in spans:
        for i in range(start, end):
            chars[i] = ";" if i == start else " "  # a cut phrase also separates what surrounds it
    return "".join(chars)


def _read_lines(text: str) -> list[Line]:
    lines: list[Line] = []
    for chunk in split_chunks(text):
        line = read_line(chunk)
        has_words = content_words(line.description) > 0
        if not line.prices and line.quantity is None and not has_words:
            continue  # "Factura", "por favor": nothing of an item
        while lines and line.prices and not lines[-1].prices and lines[-1].quantity is None:
            # "cours de piano, huit séances à 20 $", "vidange et entretien, 180 USD": the words
            # before name the item the priced chunk counts and prices.
            line.description = f"{lines[-1].description} {line.description}".strip()
            line.service = line.service or lines[-1].service
            lines.pop()
        if lines and not has_words and line.prices and not lines[-1].prices:
            # "3 horas de consultoría, a $5000 la hora": the price chunk completes the line before.
            lines[-1].prices = line.prices
            continue
        has_words = content_words(line.description) > 0
        if lines and not has_words and line.prices and line.quantity is None and all(p.basis == "total" for p in line.prices):
            lines[-1].stated_totals = line.prices  # "total 15 000 FC": checked against the line
            continue
        lines.append(line)
    return lines


def _currency(lines: list[Line], ctx: TenantContext, ev: dict[str, Decimal], reasons: list[str]) -> str:
    seen = set()
    rule = "currency.explicit"
    for line in lines:
        for price in line.prices + line.stated_totals:
            if price.unsupported:
                raise Refused("currency_unsupported", "the request uses a currency this tenant does not invoice in")
            code = price.currency
            if code == "$":
                code, rule = ctx.dollar_currency, "currency.dollar_sign"
                reasons.append(f"currency: '$' read as {code}, the tenant's convention")
            elif code is None:
                code = HOME_CURRENCY[ctx.jurisdiction]
                if rule == "currency.explicit":
                    rule = "currency.default"
            seen.add(code)
    if not seen:
        seen.add(HOME_CURRENCY[ctx.jurisdiction])
        rule = "currency.default"
    if len(seen) > 1:
        raise Refused("mixed_currencies", f"the request mixes {', '.join(sorted(seen))}")
    iso = seen.pop()
    engine = ENGINE_CURRENCY[ctx.jurisdiction].get(iso)
    if engine is None:
        raise Refused("currency_unsupported", f"{iso} is not a currency of {ctx.jurisdiction} invoices")
    ev["currency"] = EVIDENCE[rule]
    return engine


def _line_body(i: int, line: Line, ctx: TenantContext, tax: phrases.TaxMention, ev: dict[str, Decimal],
               reasons: list[str], questions: list[str]) -> dict[str, Any]:
    at = f"lines[{i}]"
    if not line.description:
        questions.append(f"{at}.description: what is sold?")
    quantity = line.quantity if line.quantity is not None else Decimal("1")
    _lower(ev, "quantity", EVIDENCE[f"quantity.{line.quantity_rule}"])
    if line.ambiguous_number:
        ev[f"penalty.separator.{i}q"] = EVIDENCE["penalty.separator"]
    if quantity <= 0 or quantity >= MAX_QUANTITY or -quantity.as_tuple().exponent > 3:
        raise Refused("implausible_quantity", f"{at}: a quantity of {quantity} is not plausible")
    if quantity != quantity.to_integral_value() and line.unit not in MEASURES:
        raise Refused("fractional_count", f"{at}: {quantity} {line.unit or 'units'} cannot be counted")
    values = {p.value for p in line.prices}
    if line.comma_doubt or any(p.comma_doubt for p in line.prices + line.stated_totals):
        # "1,500": a decimal comma in both markets' own convention, a thousands comma in English
        # habits. The review saw "2 chaises à 1,500 FC" accepted as 1500: asked, not guessed.
        questions.append(f"{at}: is a number written with ',' and three digits a thousand or a decimal?")
    if len(line.prices) > 1:
        # Even equal values ("a $5000 cada una por $5000"): each and in all cannot both be true.
        raise Refused("two_prices", f"{at}: {len(line.prices)} prices for one item")
    for price in line.prices:
        per, unit_of = unit_family(price.per), unit_family(line.unit)
        if price.per and (per or unit_of) and per != unit_of:
            # "3 días a $5000/hora", "3 sacs à 5 000 FC le kilo", "3 docenas a $5000 el huevo".
            raise Refused("unit_mismatch", f"{at}: {line.unit or 'units'} priced per {price.per}")
    if not values:
        questions.append(f"{at}.unit_price: no price for {line.description or 'this item'!r}")
        unit = None
    elif len(values) > 1:
        raise Refused("two_prices", f"{at}: two prices for one item ({', '.join(map(str, sorted(values)))})")
    else:
        price = line.prices[0]
        if price.ambiguous:
            ev[f"penalty.separator.{i}p"] = EVIDENCE["penalty.separator"]
        unit = price.value
        rule = "price.marked" if price.currency else "price.bare"
        if price.basis == "total" and quantity != 1:
            unit = (price.value / quantity).quantize(Decimal("0.01"))
            if unit * quantity != price.value:
                raise Refused("total_not_divisible", f"{at}: {price.value} for {quantity} is not a price per unit")
            rule = "price.from_total"
            reasons.append(f"{at}: unit price {unit} from the stated total {price.value}")
        elif price.basis == "unclear" and quantity != 1:
            questions.append(f"{at}.unit_price: is {price.value} the price of one or of all {quantity}?")
        _lower(ev, "unit_price", EVIDENCE[rule])
        if unit <= 0 or unit >= MAX_PRICE or -unit.as_tuple().exponent > 2:
            raise Refused("implausible_price", f"{at}: a unit price of {unit} is not plausible")
    for stated in line.stated_totals:
        if unit is not None and unit * quantity != stated.value:
            raise Refused("total_mismatch", f"{at}: {quantity} x {unit} is not the stated total {stated.value}")
    if _STRAY_MARKER.search(line.description):
        questions.append(f"buyer: is the buyer named in {line.description!r}?")
    if re.search(r"\b[A-ZÁÉÍÓÚÑ][a-záéíóúñ]+\s+[A-ZÁÉÍÓÚÑ][a-záéíóúñ]+", line.description):
        # Two capitalised words inside an item ("maquillaje María González"): likely a name the
        # buyer rules did not recognise.
        ev[f"penalty.name_in_description.{i}"] = EVIDENCE["penalty.name_in_description"]
    if len(line.description.split()) > 6:
        ev[f"penalty.long_description.{i}"] = EVIDENCE["penalty.long_description"]
    body: dict[str, Any] = {"description": line.description[:200] or "?", "quantity": str(quantity),
                            "unit_price": str(unit) if unit is not None else None}
    _lower(ev, "tax", EVIDENCE["tax.explicit" if (tax.rate or tax.exempt) else "tax.default"])
    if ctx.jurisdiction == CD:
        body["item_type"] = "SER" if line.service else "BIE"
        body["tax_group"] = _drc_group(tax)
    elif ctx.ar_issuer == "responsable_inscripto":
        body["vat_rate"] = _ar_rate(tax)
    elif tax.rate and tax.rate != "0":
        raise Refused("vat_on_class_c", "a monotributo or exempt issuer charges no IVA (class C receipt)")
    return body


def _lower(ev: dict[str, Decimal], key: str, value: Decimal) -> None:
    ev[key] = min(ev.get(key, value), value)  # a field is as sure as its least sure line


def _drc_group(tax: phrases.TaxMention) -> str:
    if tax.drc_group:
        return tax.drc_group
    if tax.exempt:
        return "A"
    if tax.rate is None or Decimal(tax.rate) == 16:
        return "B"
    if Decimal(tax.rate) == 8:
        return "C"
    raise Refused("tax_rate_unknown", f"TVA {tax.rate} % is not a DRC rate (16 % or 8 %)")


_AR_RATES = {Decimal("21"): "21", Decimal("10.5"): "10.5", Decimal("27"): "27", Decimal("5"): "5",
             Decimal("2.5"): "2.5", Decimal("0"): "0"}


def _ar_rate(tax: phrases.TaxMention) -> str:
    if tax.exempt:
        return "exento"
    if tax.rate is None:
        return "21"
    code = _AR_RATES.get(Decimal(tax.rate))
    if code is None:
        raise Refused("tax_rate_unknown", f"IVA {tax.rate} % is not an Argentine rate")
    return code


_CLASS_A_CONDITIONS = {"responsable_inscripto", "monotributo"}


def _argentina_header(body: dict[str, Any], buyer: dict[str, Any] | None, lines: list[Line], ctx: TenantContext,
                      tax: phrases.TaxMention, currency: str, due: Any, reasons: list[str]) -> None:
    if ctx.ar_issuer != "responsable_inscripto":
        body["type"] = "11"
    elif buyer and buyer.get("doc_type") == "CUIT" and buyer.get("vat_condition") in _CLASS_A_CONDITIONS:
        body["type"] = "1"
    else:
        body["type"] = "6"
    if tax.mode:
        body["price_mode"] = tax.mode
    if currency != "PES":
        body["currency"] = currency
        reasons.append("currency: a DOL invoice needs the day's exchange_rate, added by the drafting service")
    services = [line.service for line in lines]
    if any(services):
        body["concept"] = "services" if all(services) else "both"
        today = ctx.today.isoformat()
        body["service_from"] = body["service_to"] = today
        body["payment_due"] = due.isoformat() if due else today
        reasons.append("concept: services; the service period defaults to today")
