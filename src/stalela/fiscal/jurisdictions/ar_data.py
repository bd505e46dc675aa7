"""Argentina (ARCA, ex-AFIP): every code, id, table and limit the AR engine (`ar.py`) applies.

Data only, so that a rule can follow a new resolution or a new WSFEv1 manual by editing a table.
Sources and which entries are our reading are in docs/jurisdictions/ar.md.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType

from stalela.fiscal.core.rules import TaxGroup

CODE = "AR"
CURRENCY = "PES"  # ARCA's MonId for the peso (FEParamGetTiposMonedas), not ISO's ARS
TIMEZONE = "America/Argentina/Buenos_Aires"

# ------------------------------------------------------------------- receipt types (CbteTipo)

FACTURA = "factura"
NOTA_DEBITO = "nota_debito"
NOTA_CREDITO = "nota_credito"


@dataclass(frozen=True, slots=True)
class ReceiptType:
    cbte_tipo: int
    letter: str  # the receipt class (RG 1415): A, B or C
    kind: str  # FACTURA, NOTA_DEBITO or NOTA_CREDITO
    name: str


RECEIPT_TYPES: Mapping[str, ReceiptType] = MappingProxyType({str(r.cbte_tipo): r for r in (
    ReceiptType(1, "A", FACTURA, "Factura A"),
    ReceiptType(2, "A", NOTA_DEBITO, "Nota de Débito A"),
    ReceiptType(3, "A", NOTA_CREDITO, "Nota de Crédito A"),
    ReceiptType(6, "B", FACTURA, "Factura B"),
    ReceiptType(7, "B", NOTA_DEBITO, "Nota de Débito B"),
    ReceiptType(8, "B", NOTA_CREDITO, "Nota de Crédito B"),
    ReceiptType(11, "C", FACTURA, "Factura C"),
    ReceiptType(12, "C", NOTA_DEBITO, "Nota de Débito C"),
    ReceiptType(13, "C", NOTA_CREDITO, "Nota de Crédito C"),
)})


def _types(letter: str, kind: str) -> frozenset[str]:
    return frozenset(t for t, r in RECEIPT_TYPES.items() if r.letter == letter and r.kind == kind)


CREDIT_NOTE_TYPES = frozenset(t for t, r in RECEIPT_TYPES.items() if r.kind == NOTA_CREDITO)
DEBIT_NOTE_TYPES = frozenset(t for t, r in RECEIPT_TYPES.items() if r.kind == NOTA_DEBITO)
NOTE_TYPES = CREDIT_NOTE_TYPES | DEBIT_NOTE_TYPES  # both cite an original (CbtesAsoc)

# Before the letter in a fiscal number: a factura reads "B 00003-00000042", its notes "NC B ..." and
# "ND B ...", since every type numbers from 1 at each point of sale.
NUMBER_PREFIX: Mapping[str, str] = MappingProxyType({FACTURA: "", NOTA_DEBITO: "ND ", NOTA_CREDITO: "NC "})

# What a note may cite, always within its own letter. A credit note corrects an invoice or a debit
# note (a debit note for interest later waived is credited like an invoice); a debit note adds to
# an invoice, or reverses a credit note issued by mistake (an authorised receipt is never voided:
# the opposite note is the only way back).
ORIGINAL_TYPES: Mapping[str, frozenset[str]] = MappingProxyType({
    **{t: _types(RECEIPT_TYPES[t].letter, FACTURA) | _types(RECEIPT_TYPES[t].letter, NOTA_DEBITO)
       for t in CREDIT_NOTE_TYPES},
    **{t: _types(RECEIPT_TYPES[t].letter, FACTURA) | _types(RECEIPT_TYPES[t].letter, NOTA_CREDITO)
       for t in DEBIT_NOTE_TYPES},
})

# Which letters an issuer may use, by its own IVA condition (RG 1415 art. 8; RG 4291).
ISSUER_LETTERS: Mapping[str, frozenset[str]] = MappingProxyType({
    "responsable_inscripto": frozenset({"A", "B"}),
    "monotributo": frozenset({"C"}),
    "exento": frozenset({"C"}),
})

# ----------------------------------------------------------------------------- price modes

PRICE_NET = "net"  # unit prices before IVA; IVA is added per rate
PRICE_GROSS = "gross"  # unit prices include IVA ("IVA contenido"); IVA is extracted per rate
PRICE_MODES = frozenset({PRICE_NET, PRICE_GROSS})
# An A receipt shows the IVA apart (the buyer computes it as crédito fiscal), so prices are naturally
# net; B and C are priced to the final consumer, IVA included.
DEFAULT_PRICE_MODE: Mapping[str, str] = MappingProxyType(
    {"A": PRICE_NET, "B": PRICE_GROSS, "C": PRICE_GROSS})

# ------------------------------------------------------------------------------- IVA rates

# Where a rate's amounts go in FECAEDetRequest.
TAXED = "taxed"  # ImpNeto + one AlicIva {Id, BaseImp, Importe}; 0 % is "gravado a tasa 0" (Id 3)
EXEMPT = "exempt"  # ImpOpEx
NOT_TAXED = "not_taxed"  # ImpTotConc
CLASS_C = "class_c"  # ImpNeto, no AlicIva: a C receipt shows no IVA at all


@dataclass(frozen=True, slots=True)
class Rate:
    code: str
    rate: Decimal
    kind: str
    alic_iva_id: int | None
    name: str


RATES: Mapping[str, Rate] = MappingProxyType({r.code: r for r in (
    Rate("0", Decimal("0"), TAXED, 3, "IVA 0 % (gravado a tasa cero)"),
    Rate("2.5", Decimal("0.025"), TAXED, 9, "IVA 2,5 %"),
    Rate("5", Decimal("0.05"), TAXED, 8, "IVA 5 %"),
    Rate("10.5", Decimal("0.105"), TAXED, 4, "IVA 10,5 % (alícuota reducida)"),
    Rate("21", Decimal("0.21"), TAXED, 5, "IVA 21 % (alícuota general)"),
    Rate("27", Decimal("0.27"), TAXED, 6, "IVA 27 % (alícuota incrementada)"),
    Rate("exento", Decimal("0"), EXEMPT, None, "Exento"),
    Rate("no_gravado", Decimal("0"), NOT_TAXED, None, "No gravado"),
    # Never sent by a client: the group every line of a C receipt counts in (see CLASS_C).
    Rate("sin_iva", Decimal("0"), CLASS_C, None, "Sin IVA discriminado (comprobante C)"),
)})
CLASS_C_RATE = "sin_iva"
LINE_RATES = tuple(code for code, r in RATES.items() if r.kind != CLASS_C)  # what a line may send
RATE_ORDER: Mapping[str, int] = MappingProxyType({code: i for i, code in enumerate(RATES)})

TAX_GROUPS: Mapping[str, TaxGroup] = MappingProxyType(
    {code: TaxGroup(code, r.name, r.rate) for code, r in RATES.items()})

# ------------------------------------------------------------------------------- buyer

DOC_TYPES: Mapping[str, int] = MappingProxyType({"CUIT": 80, "CUIL": 86, "DNI": 96, "CF": 99})
CF_DOC = "CF"
CF_DOC_NUMBER = "0"
DNI_LENGTHS = (7, 8)

# RG 5616/2024: the receiver's IVA condition (CondicionIVAReceptorId), by name -> ARCA's id.
VAT_CONDITIONS: Mapping[str, int] = MappingProxyType({
    "responsable_inscripto": 1,
    "exento": 4,
    "consumidor_final": 5,
    "monotributo": 6,
    "no_categorizado": 7,
    "proveedor_exterior": 8,
    "cliente_exterior": 9,
    "iva_liberado": 10,
    "monotributista_social": 13,
    "no_alcanzado": 15,
    "monotributo_trabajador_independiente": 16,
})
CONSUMIDOR_FINAL = "consumidor_final"

# The conditions ARCA accepts per receipt class (WSFEv1 manual, table "Condición frente al IVA del
# receptor"; FEParamGetCondicionIvaReceptor(ClaseCmp) answers the same sets; ARCA rejects another
# value with 10243). A monotributista receives an A since RG 5003 (it may compute the IVA through
# the "procedimiento permanente de transición al Régimen General", ARCA's observation 10217), so it
# is not accepted on a B; an RI buyer must get an A.
CLASS_VAT_CONDITIONS: Mapping[str, frozenset[str]] = MappingProxyType({
    "A": frozenset({"responsable_inscripto", "monotributo", "monotributista_social",
                    "monotributo_trabajador_independiente"}),
    "B": frozenset({"exento", "consumidor_final", "no_categorizado", "proveedor_exterior",
                    "cliente_exterior", "iva_liberado", "no_alcanzado"}),
    "C": frozenset(VAT_CONDITIONS),
})
CLASS_A_DOC_TYPES = frozenset({"CUIT"})  # an A receipt names its buyer by CUIT

# A B or C receipt to an unidentified consumidor final (DocTipo 99) at or above this amount (in
# pesos; a DOL receipt converted at its rate) must identify the buyer. RG 5824 (2025): ARS 10,000,000
# as given in the lead's brief; to be confirmed against the published text. None disables the rule.
CF_IDENTIFICATION_THRESHOLD: Decimal | None = Decimal("10000000")

# ------------------------------------------------------------------------- header codes

CONCEPTS: Mapping[str, int] = MappingProxyType({"products": 1, "services": 2, "both": 3})
DEFAULT_CONCEPT = "products"
SERVICE_CONCEPTS = frozenset({"services", "both"})
SERVICE_DATE_FIELDS = ("service_from", "service_to", "payment_due")

CURRENCIES = frozenset({CURRENCY, "DOL"})  # ARCA MonId
PES_RATE = Decimal("1")


@dataclass(frozen=True)
class Limits:
    min_lines: int = 1
    max_lines: int = 1000
    description_max: int = 200
    code_max: int = 64
    name_max: int = 200
    quantity_places: int = 3
    price_places: int = 2
    exchange_rate_places: int = 6
    max_quantity: Decimal = Decimal("1000000000000")  # exclusive, as the DRC
    # WSFEv1 amounts are doubles with 13 integer digits and 2 decimals: below 10^13 every amount is
    # also exactly what a double carries to ARCA.
    max_amount: Decimal = Decimal("10000000000000")  # exclusive: unit price, line, total
    max_exchange_rate: Decimal = Decimal("1000000000")  # exclusive, ours


LIMITS = Limits()
