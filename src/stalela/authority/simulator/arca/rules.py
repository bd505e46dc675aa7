"""What WSFEv1's FECAESolicitar checks, read from the request with Decimal arithmetic only.

Written from reference/arca.md §2.2-2.6 and issue 14, independently of Stalela's IVA engine:
the two must agree for an invoice to pass, which is the point. Amounts arrive as xsd:double
*text*; they are read with ``Decimal(text)``, never through a float.

Codes ARCA documents (reference §2.5) keep ARCA's numbers: 10016, 10242, 10246, and 10013 and
10048 (from the manual's tables, marked "confirm" in the reference). Every code from 10901 on is
the simulator's own, for a rule whose ARCA code the reference does not give; docs list them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from lxml import etree

from .soap import children, text

LETTER = {1: "A", 2: "A", 3: "A", 6: "B", 7: "B", 8: "B", 11: "C", 12: "C", 13: "C"}
NOTES = frozenset({2, 3, 7, 8, 12, 13})  # debit and credit notes: they need CbtesAsoc
IVA_RATES = {3: Decimal("0"), 4: Decimal("10.5"), 5: Decimal("21"), 6: Decimal("27"),
             8: Decimal("5"), 9: Decimal("2.5")}
IVA_NAMES = {3: "0%", 4: "10.5%", 5: "21%", 6: "27%", 8: "5%", 9: "2.5%"}
# RG 5616 receiver conditions (reference §2.8) and the classes each may receive. The
# simulator's reading: A only to 1, 6, 13, 16 (a buyer who computes IVA credit or is a
# monotributista); B to every other condition; C, the class of a monotributo or exempt issuer,
# to any buyer at all.
CONDITIONS = {1: "IVA Responsable Inscripto", 4: "IVA Sujeto Exento", 5: "Consumidor Final",
              6: "Responsable Monotributo", 7: "Sujeto No Categorizado",
              8: "Proveedor del Exterior", 9: "Cliente del Exterior",
              10: "IVA Liberado - Ley N° 19.640", 13: "Monotributista Social",
              15: "IVA No Alcanzado", 16: "Monotributo Trabajador Independiente Promovido"}
CONDITIONS_A = frozenset({1, 6, 13, 16})
CONDITIONS_FOR = {"A": CONDITIONS_A, "B": frozenset(CONDITIONS) - CONDITIONS_A,
                  "C": frozenset(CONDITIONS)}
DAYS_BACK = {1: 5, 2: 14, 3: 14}  # CbteFch window by Concepto (django-afip's offsets)
CENT = Decimal("0.01")
ZERO = Decimal("0")
MAX_AMOUNT = Decimal("1e15")

MESSAGES = {
    10013: "Para comprobantes clase A el campo DocTipo debe ser 80 (CUIT).",
    10016: ("El numero o fecha del comprobante no se corresponde con el proximo a autorizar. "
            "Consultar metodo FECompUltimoAutorizado."),
    10048: "El campo ImpTotal debe ser igual a ImpTotConc + ImpNeto + ImpOpEx + ImpTrib + ImpIVA.",
    10242: ("El campo Condicion Frente al IVA del receptor no es valido para la clase de "
            "comprobante informado. Consultar metodo FEParamGetCondicionIvaReceptor."),
    10246: ("Campo Condicion Frente al IVA del receptor es obligatorio conforme lo reglamentado "
            "por la Resolucion General N 5616."),
    10901: "CantReg no coincide con la cantidad de comprobantes (FECAEDetRequest) informados.",
    10902: "CbteHasta debe ser igual a CbteDesde: el simulador autoriza comprobantes de a uno.",
    10903: "PtoVta o CbteTipo invalido.",
    10904: "Campo ausente o con formato invalido.",
    10905: "El campo ImpIVA debe ser igual a la suma de los importes de AlicIva.",
    10906: "El Importe de AlicIva no se corresponde con BaseImp por la alicuota del Id.",
    10907: "La suma de BaseImp de AlicIva debe ser igual a ImpNeto.",
    10908: "Los comprobantes clase C no deben informar IVA (Iva ausente e ImpIVA 0).",
    10909: "El Id de AlicIva no es valido (3, 4, 5, 6, 8 o 9).",
    10914: "FchVtoPago no puede ser anterior a la fecha del comprobante (CbteFch).",
    10910: ("FchServDesde, FchServHasta y FchVtoPago son obligatorios para Concepto 2 o 3, "
             "y no deben informarse para Concepto 1 (FchServDesde <= FchServHasta)."),
    10911: "Las notas de debito y credito deben informar CbtesAsoc.",
    10912: "MonId/MonCotiz invalidos: PES con MonCotiz 1, DOL con MonCotiz mayor a 0.",
    10913: "El campo ImpTrib debe ser igual a la suma de los importes de Tributos.",
}

Message = tuple[int, str]


def msg(code: int, detail: str | None = None) -> Message:
    return code, f"{MESSAGES[code]} {detail}".strip() if detail else MESSAGES[code]


class RequestError(Exception):
    """A request-level error (``Errors``): nothing in the request is authorised."""

    def __init__(self, code: int, detail: str | None = None) -> None:
        self.message = msg(code, detail)
        super().__init__(self.message[1])


@dataclass
class AlicIva:
    id: int
    base: Decimal
    amount: Decimal


@dataclass
class Detail:
    """One FECAEDetRequest as read; ``fields`` keeps the text sent, echoed by FECompConsultar."""

    concept: int
    doc_type: int
    doc_number: int
    first: int
    last: int
    date: date | None
    amounts: dict[str, Decimal]
    service_from: date | None
    service_to: date | None
    payment_due: date | None
    currency: str | None
    rate: Decimal | None
    iva: list[AlicIva] | None
    tributes: list[Decimal] | None
    associated: list[dict] | None
    condition: int | None
    fields: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------- reading


def read_int(el: etree._Element | None, name: str, *, required: bool = True) -> int | None:
    value = text(el, name)
    if value is None:
        if required:
            raise RequestError(10904, f"({name} ausente)")
        return None
    try:
        return int(value)
    except ValueError:
        raise RequestError(10904, f"({name}={value!r} no es entero)") from None


def read_decimal(el: etree._Element | None, name: str, *, required: bool = True) -> Decimal | None:
    """An xsd:double read exactly as written: '121.10' is Decimal('121.10'), never 121.0999..."""
    value = text(el, name)
    if value is None:
        if required:
            raise RequestError(10904, f"({name} ausente)")
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise RequestError(10904, f"({name}={value!r} no es numerico)") from None
    if not number.is_finite() or number < 0 or number >= MAX_AMOUNT:
        raise RequestError(10904, f"({name}={value!r} fuera de rango)")
    return number


def read_date(el: etree._Element | None, name: str) -> date | None:
    value = text(el, name)
    if value is None:
        return None
    try:
        if len(value) != 8 or not value.isdigit():
            raise ValueError
        return date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        raise RequestError(10904, f"({name}={value!r} no es una fecha yyyymmdd)") from None


def _array(el: etree._Element | None, name: str, item: str) -> list[etree._Element] | None:
    """The items of an optional array element; None when the array itself is absent or empty."""
    items = [i for a in children(el, name) for i in children(a, item)]
    return items or None


def read_detail(el: etree._Element) -> Detail:
    concept = read_int(el, "Concepto")
    if concept not in DAYS_BACK:
        raise RequestError(10904, f"(Concepto={concept} no es 1, 2 o 3)")
    amounts = {name: read_decimal(el, name) for name in
               ("ImpTotal", "ImpTotConc", "ImpNeto", "ImpOpEx", "ImpTrib", "ImpIVA")}
    iva_items = _array(el, "Iva", "AlicIva")
    iva = None if iva_items is None else [
        AlicIva(read_int(a, "Id"), read_decimal(a, "BaseImp"), read_decimal(a, "Importe"))
        for a in iva_items]
    trib_items = _array(el, "Tributos", "Tributo")
    tributes = None if trib_items is None else [read_decimal(t, "Importe") for t in trib_items]
    asoc_items = _array(el, "CbtesAsoc", "CbteAsoc")
    associated = None if asoc_items is None else [
        {"Tipo": read_int(a, "Tipo"), "PtoVta": read_int(a, "PtoVta"), "Nro": read_int(a, "Nro"),
         "Cuit": text(a, "Cuit"), "CbteFch": text(a, "CbteFch")} for a in asoc_items]
    detail = Detail(
        concept=concept, doc_type=read_int(el, "DocTipo"), doc_number=read_int(el, "DocNro"),
        first=read_int(el, "CbteDesde"), last=read_int(el, "CbteHasta"),
        date=read_date(el, "CbteFch"), amounts=amounts,
        service_from=read_date(el, "FchServDesde"), service_to=read_date(el, "FchServHasta"),
        payment_due=read_date(el, "FchVtoPago"), currency=text(el, "MonId"),
        rate=read_decimal(el, "MonCotiz", required=False), iva=iva, tributes=tributes,
        associated=associated, condition=read_int(el, "CondicionIVAReceptorId", required=False))
    simple = ("Concepto", "DocTipo", "DocNro", "CbteDesde", "CbteHasta", "CbteFch", "ImpTotal",
              "ImpTotConc", "ImpNeto", "ImpOpEx", "ImpTrib", "ImpIVA", "FchServDesde",
              "FchServHasta", "FchVtoPago", "MonId", "MonCotiz", "CondicionIVAReceptorId")
    detail.fields = {name: text(el, name) for name in simple}
    detail.fields["Iva"] = [{"Id": a.id, "BaseImp": text(i, "BaseImp"), "Importe": text(i, "Importe")}
                            for a, i in zip(iva or [], iva_items or [], strict=True)]
    detail.fields["CbtesAsoc"] = associated or []
    return detail


# -------------------------------------------------------------------------------- checking


def expected_vat(base: Decimal, iva_id: int) -> Decimal:
    return (base * IVA_RATES[iva_id] / 100).quantize(CENT, rounding=ROUND_HALF_UP)


def check_numbering(detail: Detail, *, last: int, last_date: str | None, today: date) -> list[Message]:
    """The request-level errors of one receipt: its number and its date (both Err 10016)."""
    errors: list[Message] = []
    if detail.first != last + 1:
        errors.append(msg(10016, f"(CbteDesde {detail.first}, ultimo autorizado {last})"))
    elif detail.last != detail.first:
        errors.append(msg(10902))
    when = detail.date or today
    earliest = today - timedelta(days=DAYS_BACK[detail.concept])
    floor = f"{last_date}" if last_date else None
    if when < earliest or when > today + timedelta(days=1) or \
            (floor is not None and when.strftime("%Y%m%d") < floor):
        errors.append(msg(10016, f"(CbteFch {when:%Y%m%d} fuera de rango)"))
    return errors


def check_receipt(detail: Detail, cbte_type: int) -> list[Message]:
    """The per-receipt observations that reject it, in a fixed order."""
    letter = LETTER[cbte_type]
    a = detail.amounts
    obs: list[Message] = []
    if letter == "A" and detail.doc_type != 80:
        obs.append(msg(10013))
    parts = a["ImpTotConc"] + a["ImpNeto"] + a["ImpOpEx"] + a["ImpTrib"] + a["ImpIVA"]
    if a["ImpTotal"] != parts:
        obs.append(msg(10048, f"(ImpTotal {a['ImpTotal']}, suma {parts})"))
    if letter == "C":
        if detail.iva or a["ImpIVA"] != ZERO:
            obs.append(msg(10908))
    else:
        iva = detail.iva or []
        unknown = [v.id for v in iva if v.id not in IVA_RATES]
        if unknown:
            obs.append(msg(10909, f"(Id {unknown[0]})"))
        if sum((v.amount for v in iva), ZERO) != a["ImpIVA"]:
            obs.append(msg(10905))
        wrong = [v for v in iva if v.id in IVA_RATES
                 and abs(v.amount - expected_vat(v.base, v.id)) > CENT]
        if wrong:
            v = wrong[0]
            obs.append(msg(10906, f"(Id {v.id}: BaseImp {v.base}, Importe {v.amount}, "
                                  f"esperado {expected_vat(v.base, v.id)})"))
        if sum((v.base for v in iva), ZERO) != a["ImpNeto"]:
            obs.append(msg(10907))
    if detail.tributes is not None or a["ImpTrib"] != ZERO:
        if sum(detail.tributes or [], ZERO) != a["ImpTrib"]:
            obs.append(msg(10913))
    dates = (detail.service_from, detail.service_to, detail.payment_due)
    if detail.concept in (2, 3):
        if None in dates or detail.service_from > detail.service_to:
            obs.append(msg(10910))
        elif detail.date is not None and detail.payment_due < detail.date:
            obs.append(msg(10914, f"(FchVtoPago {detail.payment_due:%Y%m%d}, CbteFch {detail.date:%Y%m%d})"))
    elif any(d is not None for d in dates):
        obs.append(msg(10910))
    if detail.condition is None:
        obs.append(msg(10246))
    elif detail.condition not in CONDITIONS_FOR[letter]:
        obs.append(msg(10242, f"(CondicionIVAReceptorId {detail.condition}, clase {letter})"))
    if cbte_type in NOTES and not detail.associated:
        obs.append(msg(10911))
    if not _currency_ok(detail.currency, detail.rate):
        obs.append(msg(10912))
    return obs


def _currency_ok(currency: str | None, rate: Decimal | None) -> bool:
    if currency == "PES":
        return rate == Decimal(1)
    if currency == "DOL":
        return rate is not None and rate > ZERO
    return False  # absent, or a currency the simulator does not know
