"""Reading the item lines: the request (buyer, ids, taxes and due dates already cut out) is split
into chunks ("3 horas de consultoría a $5000/hora", "dos cajas a 1500 cada una"), and each chunk
gives a quantity, a description and a unit price with the evidence each rests on."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal

from stalela.assistants.parser.numbers import NUMBER, read_number

# Currency words, longest first so "US$" is not read as "$". Values are ISO codes; "$" is the
# tenant's dollar, decided by the caller; None marks a currency no tenant here invoices in.
_CURRENCIES = [
    (r"pesos (?:chilenos|uruguayos|mexicanos|colombianos)|libras?(?: esterlinas?)?|livres? sterling|yenes|yens?|yuan(?:es)?"
     r"|francos? suizos|francs? suisses|rands?|nairas?|shillings?|reais|soles|guaran[ií]es|bolivianos|GBP|CHF|JPY|CNY|BRL|CLP|UYU"
     # A franc that is not said to be Congolese ("Fbu", "F", "frs") and other currencies the review
     # saw read as the home one (MXN, COP, PYG, bolívares): refused, never defaulted.
     r"|MXN|COP|PYG|PEN|BOB|VES|VEF|XOF|BIF|RWF|UGX|KES|TZS|ZAR|AOA|ZMW|bol[ií]var(?:es)?|Fbu|frs?|F", None),
    (r"US\$|U\$S|U\$D|\$US|USD|dólares(?: estadounidenses)?|dolares|dólar|dolar|dollars?(?: américains?| us)?", "USD"),
    (r"\$\s?ARS|ARS|pesos(?: argentinos)?|peso", "ARS"),
    (r"CDF|FC|francs? congolais|francs?|fc", "CDF"),
    (r"€|EUR|euros?|FCFA|XAF|CFA|reales|R\$|£", None),
    (r"\$", "$"),
    (r"(?-i:(?!TTC|IVA|TVA|NIF|HT)[A-Z]{3})", None),  # any other ISO-looking code after an amount
]
_CUR = "|".join(f"(?:{p})" for p, _ in _CURRENCIES)
_AMOUNT = re.compile(rf"(?P<c1>{_CUR})\s?(?P<n1>{NUMBER})|(?P<n2>{NUMBER})\s?(?P<c2>{_CUR})(?![\w$])",
                     re.IGNORECASE)
# A price written without currency: a number right after a rate preposition ("a 5000 cada una").
_BARE_PRICE = re.compile(rf"(?:\ba\b|\bà\b|\bal precio de\b|\bau prix de\b|@)\s*(?P<n>{NUMBER})", re.IGNORECASE)
_PER_UNIT = re.compile(r"^\s*(?:/\s*\w+|(?:la|el|por|par|l'|cada|c/u|chacun|chacune|pièce|unité|la pièce|l'unité"
                       r"|la unidad|por unidad|each|le|la hora|l'heure|par heure|por hora|por día|par jour|cada uno|cada una)\b)",
                       re.IGNORECASE)
_BEFORE_UNIT_PRICE = re.compile(r"(?:\ba\b|\bà\b|\bal precio de\b|\bau prix de\b|@|\bde\b|\bpu\b|\bp\.u\.?)\s*$", re.IGNORECASE)
_BEFORE_TOTAL = re.compile(r"(?:\bpor\b|\bpour\b|\btotal(?:\s+de)?\b|\ben total\b|\bau total\b|\bpor un total de\b|\bpour un total de\b"
                           r"|\bpor todo\b|\bpour le tout\b|\bpar\b|\bsoit\b)\s*$", re.IGNORECASE)
_AFTER_TOTAL = re.compile(r"^\s*(?:en total|au total|el total|le total|por todo|pour le tout|total)\b", re.IGNORECASE)
_QTY = re.compile(rf"(?:^|(?<=\s))(?:x\s?(?P<x1>{NUMBER})|(?P<x2>{NUMBER})\s?(?:x|×|unidades|unités)(?=\s|$)|(?P<q>{NUMBER}))",
                  re.IGNORECASE)
_SPLIT = re.compile(r"\s*(?:;|\n|,\s|\s\+\s|\by\b|\bet\b|\bmás\b(?!\s+iva)|\bmas\b(?!\s+iva)|\bplus\b(?!\s+tva)|\bademás\b"
                    r"|\bainsi que\b|\baparte\b)\s*", re.IGNORECASE)
# Words that carry no item meaning: what is left once they are removed is the description.
_FILLER = set("""factura facture facturas factures hazme haz hacé hace hacer fais faire faites crée créer crea creá crear
emite emití emitir émets émettre emettre établis établir etablir genera generá generar prepara prepará préparer prépare
una un une el la los las le les del de d' des du al a à au aux en por pour par favor please svp stp s'il te vous plaît plait merci
gracias con avec total soit chacun chacune cada c/u uno unidad unidades unité unités pièce pièces precio prix
necesito quiero hola buenas buenos bonjour bonsoir salut haceme hacéme hazme j'ai besoin veux voudrais necesitaría hoy aujourd'hui pu p.u p.u. me moi nous nos mi mis""".split())
_SERVICE_WORDS = re.compile(r"\b(?:horas?|hs|h|heures?|d[ií]as?|jours?|journées?|mes(?:es)?|mois|semanas?|semaines?|sesi[oó]n(?:es)?"
                            r"|séances?|servicios?|services?|prestations?|consultor[ií]as?|consultations?|conseil|asesor[ií]as?|formations?"
                            r"|capacitaci[oó]n|cours|clases?|mantenimiento|maintenance|reparaci[oó]n|réparations?|instalaci[oó]n"
                            r"|installations?|location|alquiler|honorarios|honoraires|transports?|transportes?|flete|nettoyage|limpieza|audit(?:or[ií]a)?"
                            r"|dise[ñn]o|études?|dédouanement|développement|desarrollo|traduc\w+|gardiennage|entretien|coaching|visites?)\b", re.IGNORECASE)


@dataclass
class Price:
    value: Decimal
    currency: str | None  # ISO, "$" (the tenant's dollar) or None (written without currency)
    basis: str  # "unit", "total" or "unclear"
    ambiguous: bool
    unsupported: bool = False
    comma_doubt: bool = False  # "1,500": thousands or a decimal comma? (asked)
    per: str = ""  # the unit the price is of, when written ("/hora", "le kilo", "la docena")


@dataclass
class Line:
    text: str
    quantity: Decimal | None = None
    quantity_rule: str = "implicit"  # digits, x, implicit
    prices: list[Price] = field(default_factory=list)
    description: str = ""
    service: bool = False
    ambiguous_number: bool = False
    comma_doubt: bool = False
    unit: str = ""  # the word after the quantity ("kg", "horas", "sacs")
    stated_totals: list[Price] = field(default_factory=list)  # "total 15 000 FC" after the line: checked


# Units a fraction of which can be sold; "1,5 sacs" or "3,7 unidades" is a typo or a trick.
MEASURES = set("""kg kilo kilos kilogramo kilogramos kilogramme kilogrammes g gr gramos grammes l lt litro litros litre litres
m m2 m² m3 metro metros mètre mètres tonelada toneladas tonne tonnes t hora horas h hs heure heures día días dia dias
jour jours mes meses mois semana semanas semaine semaines""".split())


def split_chunks(text: str) -> list[str]:
    return [c.strip(" .:-") for c in _SPLIT.split(text) if c and c.strip(" .:-")]


def _currency(token: str) -> tuple[str | None, bool]:
    for pattern, code in _CURRENCIES:
        if re.fullmatch(pattern, token.strip(), re.IGNORECASE):
            return code, code is None
    return None, True


def read_line(chunk: str) -> Line:
    line = Line(chunk)
    used: list[tuple[int, int]] = []
    for m in _AMOUNT.finditer(chunk):
        token = m.group("n1") or m.group("n2")
        reading = read_number(token)
        if reading is None:
            continue
        code, unsupported = _currency(m.group("c1") or m.group("c2"))
        line.prices.append(Price(reading.value, code, _basis(chunk, m.start(), m.end()), reading.ambiguous,
                                 unsupported, reading.ambiguous and "," in token, _per(chunk[m.end():])))
        used.append(m.span())
    if not line.prices:
        for m in _BARE_PRICE.finditer(chunk):
            reading = read_number(m.group("n"))
            if reading is None:
                continue
            after = chunk[m.end():]
            basis = "total" if _AFTER_TOTAL.match(after) else "unit"
            line.prices.append(Price(reading.value, None, basis, reading.ambiguous, per=_per(after),
                                     comma_doubt=reading.ambiguous and "," in m.group("n")))
            used.append(m.span())
    rest = _blank(chunk, used)
    for m in _QTY.finditer(rest):
        token = m.group("x1") or m.group("x2") or m.group("q")
        reading = read_number(token)
        if reading is None:
            continue
        line.quantity = reading.value
        line.quantity_rule = "x" if (m.group("x1") or m.group("x2")) else "digits"
        line.ambiguous_number = reading.ambiguous
        line.comma_doubt = reading.ambiguous and "," in token
        following = rest[m.end():].split()
        line.unit = following[0].lower().strip(".,") if following else ""
        used.append(m.span())
        break
    line.service = bool(_SERVICE_WORDS.search(chunk))
    line.description = _describe(_blank(chunk, used))
    return line


# Units a price can be "of" and the quantity must then be counted in ("3 días a $5000/hora" is
# days priced by the hour: refused, never multiplied).
_FAMILIES = {w: fam for fam, words in {
    "hour": "hora horas hs h hr hrs heure heures", "day": "día días dia dias jour jours journée journées jornada jornadas",
    "week": "semana semanas semaine semaines", "month": "mes meses mois", "year": "año años an ans année années",
    "kilo": "kg kgs kilo kilos kilogramo kilogramos kilogramme kilogrammes", "litre": "l lt litro litros litre litres",
    "dozen": "docena docenas douzaine douzaines", "metre": "m metro metros mètre mètres", "ton": "t tonelada toneladas tonne tonnes",
}.items() for w in words.split()}
_PER = re.compile(r"^\s*(?:/\s*|(?:la|el|le|par|por|l'|per|each)\s*)(\w+)", re.IGNORECASE)
# What a price may be "of" without naming a unit: one piece, or the whole.
_NEUTRAL_PER = set("""unidad unidades unité unités pièce pièces pieza piezas cada chacun chacune uno una un une u
total todo tout ensemble lot""".split())


def unit_family(word: str) -> str | None:
    return _FAMILIES.get(word.lower().strip(".,"))


def _per(after: str) -> str:
    """The word a price is said to be "of" ("/hora", "le kilo", "el huevo"), unless it is neutral."""
    m = _PER.match(after)
    return m.group(1).lower() if m and m.group(1).lower() not in _NEUTRAL_PER else ""


def _basis(chunk: str, start: int, end: int) -> str:
    before, after = chunk[:start], chunk[end:]
    if _PER_UNIT.match(after):
        return "unit"
    if _AFTER_TOTAL.match(after) or _BEFORE_TOTAL.search(before):
        return "total"
    if _BEFORE_UNIT_PRICE.search(before):
        return "unit"
    return "unclear"


def _blank(text: str, spans: list[tuple[int, int]]) -> str:
    chars = list(text)
    for start, end in spans:
        for i in range(start, end):
            chars[i] = " "
    return "".join(chars)


def _describe(text: str) -> str:
    # Drop per-unit tails ("/hora", "cada una"), punctuation and filler; keep the words' case.
    text = re.sub(r"/\s*\w+", " ", text)
    words = [w.strip(".,:;!?()\"'«»") for w in re.split(r"\s+", text)]
    words = [w for w in words if w and w.lower() not in _FILLER and not re.fullmatch(r"[\d.,%]+", w)]
    # A leading unit of time or count is the quantity's, not the item's: "horas de consultoría".
    while len(words) > 1 and words[0].lower() in _UNIT_WORDS:
        words = words[1:]
    return " ".join(words)


_UNIT_WORDS = set("""hora horas hs h heure heures día días dia dias jour jours journée journées mes meses mois semana semanas
semaine semaines unidad unidades unité unités pièce pièces pza pzas""".split())


def content_words(text: str) -> int:
    return len([w for w in re.split(r"\W+", text) if len(w) > 2 and w.lower() not in _FILLER])
