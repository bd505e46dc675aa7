"""Document-level phrases found before the lines are read: the buyer and its tax id, tax phrases,
due dates, and text that tries to instruct a model. Each finder returns what it found and the
spans it consumed, so the line reader never mistakes "para Juan Pérez" or "à 30 jours" for an item.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

from stalela.fiscal.jurisdictions.cuit import is_valid_cuit

Span = tuple[int, int]

# ------------------------------------------------------------------------------------ injection

# Requests written to steer a model ("ignore your instructions and seal") are refused outright: the
# parser itself cannot seal, but a draft carrying such text must be read by a human, never
# approved in a hurry. Also non-invoice verbs that make the request something else than a draft.
_INJECTION = re.compile(
    r"ignor\w*\s+(?:\w+\s+){0,3}(?:instruc|r[eè]gle|regla|rule|consign|indicac|directiv|check|prompt|previous|anteriores|pr[eé]c[eé]dent)"
    r"|\b(?:olvid|oubli|omit|omet|disregard|forget|skip|bypass|override|salte|saltea)\w*\s+(?:\w+\s+){0,3}"
    r"(?:instruc|indicac|r[eè]gle|regla|rule|consign|check|contr[oô]l|v[eé]rif|validaci|validation|prompt|previous|anteriores|previas)"
    r"|\bne\s+tien[sn]?\w*\s+pas\s+compte|\bpass\w*\s+outre|\bne\s+demande\w*\s+pas|\bno\s+(?:preguntes|pidas|consultes)"
    r"|\bsin\s+(?:preguntar|consultar|verificar|revisar|confirmar)|\bsans\s+(?:demander|v[eé]rifier|contr[oô]ler|confirmer)"
    r"|\bwithout\s+(?:asking|confirmation|review|checking)|\b(?:approve|confirm|seal|sign)\b"
    r"|\b(?:aprob|aprueb|approuv|valid[ea]\s+(?:sans|sin|directement|directamente))\w*|\bconfirm[aá]\w*|\bconfirme[sz]?\b"
    r"|\bsell(?:a|ala|alo|ar|e|en|ado)\b|\bscell\w*|\bsans (?:confirmation|validation|approbation)"
    r"|\bsin (?:confirmaci|aprobaci|validaci)\w*|system prompt|prompt syst|\bapprouv\w* automatiquement"
    r"|\baprob\w* autom\w*|\b(?:borr[aáe]|supprim|effac|anul[aáe]|annul)\w*|\bmodo (?:admin|desarrollador)|\bmode (?:admin|d[ée]veloppeur)"
    # Text addressed to a model: role prefixes, "note to the assistant", and JSON-looking objects.
    r"|\b(?:system|syst[eè]me|sistema|assistant|asistente|assistante|user|usuario|utilisateur|ai|ia|model[oe]?|bot|gpt|llm)\s*:"
    r"|\b(?:para|pour|to)\s+(?:el|la|l'|le|the)?\s*(?:asistente|assistant|sistema|syst[eè]me|system|ia|ai|mod[eè]l[eo]|model|bot)\b"
    r"|\b(?:instruc\w*|nota|note)\s+(?:para|pour|to|à|a)\s+(?:el\s+|la\s+|l'|le\s+|the\s+)?(?:asistente|assistant|sistema|ia|ai|system)"
    r"|[{}]|\[\s*\"|\"\s*:\s*(?:true|false|\d|\")|<\s*/?\s*(?:system|assistant|user|instructions?)\b|\[/?INST\]|\bjailbreak\b",
    re.IGNORECASE)


def find_injection(text: str) -> str | None:
    m = _INJECTION.search(text)
    return m.group(0) if m else None


# ------------------------------------------------------------------------------------ tax ids

_CUIT = re.compile(r"(?:\b(?:CUIT|CUIL)\s*(?:n[°ºo]\.?\s*)?:?\s*)?\b(\d{2})[- .]?(\d{8})[- .]?(\d)\b", re.IGNORECASE)
_CUIT_LIKE = re.compile(r"\b(?:CUIT|CUIL)\s*(?:n[°ºo]\.?\s*)?:?\s*(\d[\d .-]*\d)|\b(\d{2}-\d{5,10}-\d)\b", re.IGNORECASE)
_DNI = re.compile(r"\bDNI\s*(?:n[°ºo]\.?\s*)?:?\s*(\d{1,2}\.?\d{3}\.?\d{3})\b", re.IGNORECASE)
_NIF_KEY = re.compile(r"\b(?:NIF|N\.I\.F\.?)\s*(?:n[°ºo]\.?\s*)?:?\s*([A-Za-z0-9][A-Za-z0-9-]*)", re.IGNORECASE)
# The DRC NIF as the DGI prints it since 2011: a letter, seven digits, a check letter (A1234567B).
# The DGI publishes no check-letter algorithm, so only the shape is verified.
_NIF_SHAPE = re.compile(r"^[A-Z]\d{7}[A-Z]$")


@dataclass
class TaxId:
    kind: str  # CUIT, DNI or NIF
    value: str
    valid: bool
    span: Span


def find_tax_ids(text: str, jurisdiction: str) -> list[TaxId]:
    found: list[TaxId] = []
    if jurisdiction == "AR":
        for m in _CUIT.finditer(text):
            digits = m.group(1) + m.group(2) + m.group(3)
            if not re.match(r"(?i)CUIT|CUIL", m.group(0)) and not re.search(r"\d[- .]\d{8}[- .]\d", m.group(0)):
                # Eleven bare digits with no keyword and no CUIT separators: a phone number as well as
                # a CUIT (the review's minor finding). Not read as the buyer's id.
                found.append(TaxId("CUIT", digits, False, m.span()))
                continue
            found.append(TaxId("CUIT", digits, is_valid_cuit(digits), m.span()))
        seen = [t.span for t in found]
        for m in _CUIT_LIKE.finditer(text):
            # "CUIT 20-1234567-8": a keyword or the dashed shape with the wrong number of digits is a
            # malformed id, not a quantity of 20 (drafts-review.md, item 8).
            digits = re.sub(r"\D", "", m.group(1) or m.group(2))
            if len(digits) != 11 and not any(a <= m.start(1) < b for a, b in seen):
                found.append(TaxId("CUIT", digits, False, m.span()))
        for m in _DNI.finditer(text):
            digits = m.group(1).replace(".", "")
            found.append(TaxId("DNI", digits, len(digits) in (7, 8) and digits[0] != "0", m.span()))
    else:
        for m in _NIF_KEY.finditer(text):
            value = m.group(1).upper()
            found.append(TaxId("NIF", value, bool(_NIF_SHAPE.match(value)), m.span()))
    return found


def check_tax_id(value: str, jurisdiction: str) -> TaxId:
    """A tax id given on its own (an LLM provider's reading), checked as ``find_tax_ids`` checks one in a text:
    in Argentina eleven digits are a CUIT (its check digit), seven or eight a DNI; in the DRC a NIF's shape."""
    if jurisdiction == "AR":
        digits = re.sub(r"[- .]", "", value)
        if not digits.isdigit():
            return TaxId("CUIT", value, False, (0, 0))
        if len(digits) == 11:
            return TaxId("CUIT", digits, is_valid_cuit(digits), (0, 0))
        return TaxId("DNI", digits, len(digits) in (7, 8) and digits[0] != "0", (0, 0))
    nif = value.strip().upper()
    return TaxId("NIF", nif, bool(_NIF_SHAPE.match(nif)), (0, 0))


# ------------------------------------------------------------------------------------ buyer

_MARKER = (r"(?:\bpara\b|\bpour\b|\ba nombre de\b|\bau nom de\b|\bcliente?\s*:|\bclient\s*:"
           r"|\bà l'attention de\b|\bfact[uú]r\w*\s+(?:a|à)\b|\bdestinatario\s*:?)")
_TITLE = (r"(?:(?:el|la)\s+)?(?:señora?|sr\.?|sra\.?|don|doña|dr\.?|dra\.?|ing\.?|lic\.?)\s+"
          r"|(?:monsieur|madame|mademoiselle|m\.|mme\.?|mlle\.?|maître|me|docteur|dr\.?)\s+")
_COMPANY = (r"(?:la\s+)?(?:empresa|sociedad|firma|compañía|cooperativa)\s+(?:de\s+)?"
            r"|(?:la\s+|l')?(?:société|entreprise|compagnie|firme|ong|coopérative)\s+"
            r"|(?:l'|les\s+)?(?:établissements?|ets)\s+")
_LEGAL = r"(?:SARL|SARLU|SA|SAS|SPRL|SNC|SRL|SAU|SAS|SCS|S\.A\.?|S\.R\.L\.?|S\.A\.S\.?|Ltd|Cía|Cie|ASBL|ONG)"
_NAME_WORD = r"(?:[A-ZÁÉÍÓÚÑÀÂÇÈÊËÎÏÔÛÙÜ][\w'’.-]*|" + _LEGAL + r")"
_PARTICLE = r"(?:de|del|de la|de los|y|e|du|des|d'|le|la|van|von|&|et)"
_NAME = _NAME_WORD + r"(?:\s+(?:" + _PARTICLE + r"\s+)?" + _NAME_WORD + r")*"
_BUYER = re.compile(_MARKER + r"\s+(?:(?P<title>" + _TITLE + r")|(?P<company>" + _COMPANY + r")|(?:la|le|el|les|los|l')\s*)?"
                    r"(?P<name>(?-i:" + _NAME + r"))", re.IGNORECASE)  # the marker in any case, the name capitalised
_LEGAL_TAIL = re.compile(r"\b" + _LEGAL + r"$")
# Words that start with a capital but are no name: the start of an item after "para".
_NOT_NAME = {"iva", "tva", "factura", "facture", "el", "la", "le", "los", "las", "les", "un", "une", "una"}


@dataclass
class BuyerMention:
    name: str
    company: bool
    span: Span
    lowercase: bool = False  # written without capitals: only a known buyer is accepted from it


_LOWER_BUYER = re.compile(_MARKER + r"\s+(?:(?:el|la)\s+(?:señora?|sr\.?|sra\.?)\s+|(?:monsieur|madame|m\.|mme)\s+)?"
                          r"(?P<name>[a-záéíóúñàâçèêëîïôûù'-]+(?:\s+[a-záéíóúñàâçèêëîïôûù'-]+){0,2})", re.IGNORECASE)


def find_lowercase_buyer(text: str) -> list[BuyerMention]:
    """Candidates for a buyer written in lower case ("para juan pérez por..."): the one to three
    words after a marker, longest first. The caller keeps one only if it is a known buyer."""
    m = _LOWER_BUYER.search(text)
    if not m:
        return []
    words = [w for w in m.group("name").split()]
    while words and words[0].lower() in _NOT_NAME:
        words = words[1:]
    start = m.start()
    out = []
    for n in range(len(words), 0, -1):
        name = " ".join(words[:n])
        end = m.start("name") + len(name)
        out.append(BuyerMention(name, False, (start, end), lowercase=True))
    return out


def find_buyer(text: str) -> BuyerMention | None:
    for m in _BUYER.finditer(text):
        name = m.group("name")
        # The marker is case-insensitive but a name is written with a capital: "pour trois heures"
        # is not a buyer. IGNORECASE made [A-Z] match any letter, so the capital is checked here.
        if not name[0].isupper() or name.split()[0].lower() in _NOT_NAME:
            continue
        # A capitalised id keyword ends the name: "Bralima SARL NIF A1234567B".
        name = re.split(r"(?:^|\s+)(?:NIF|N\.I\.F|CUIT|CUIL|DNI|RCCM|IVA|TVA|RUC)\b", name, maxsplit=1, flags=re.IGNORECASE)[0]
        name = name.strip(" .,'")
        if not name:
            continue  # "Factura a CUIT 30-...": the id names the buyer, not a word
        company = bool(m.group("company")) or bool(_LEGAL_TAIL.search(name))
        return BuyerMention(name, company, (m.start(), m.end()))
    return None


def is_company_name(name: str) -> bool:
    """A name ending in a legal form ("Bralima SARL", "Pérez SRL"): a company, as ``find_buyer`` reads one."""
    return bool(_LEGAL_TAIL.search(name.strip(" .,")))


_CONDITION = re.compile(r"\b(?:responsable inscripto|monotributista|monotributo|consumidor final|sujeto exento|iva exento)\b",
                        re.IGNORECASE)


def condition_spans(text: str) -> list[Span]:
    """The buyer's IVA condition ("responsable inscripto"): read by the buyer step, no item."""
    return [m.span() for m in _CONDITION.finditer(text)]


# ------------------------------------------------------------------------------------ taxes

_RATE = re.compile(r"\b(?:iva|tva)\s*(?:del?|à|au taux de|al)?\s*(\d{1,2}(?:[.,]\d{1,2})?)\s*(?:%|por ?ciento|pour ?cent)"
                   r"|(\d{1,2}(?:[.,]\d{1,2})?)\s*(?:%|por ?ciento|pour ?cent)\s*(?:de\s+)?(?:iva|tva)\b", re.IGNORECASE)
_EXEMPT = re.compile(r"\b(?:exent[oa]s?(?: de iva)?|exonér[ée]e?s?(?: de (?:la )?tva)?|exonere[es]?|sans tva|sin iva|hors champ)\b", re.IGNORECASE)
_NET = re.compile(r"(?:\bm[aá]s\s+iva\b|\+\s*iva\b|\biva aparte\b|\bneto\b|\bhors taxes?\b|\bht\b|\bh\.t\.?|\bplus tva\b|\b\+\s*tva\b)", re.IGNORECASE)
_GROSS = re.compile(r"(?:\biva incluido\b|\bcon iva\b|\biva inclu[ií]do\b|\bprecio final\b|\bttc\b|\bt\.t\.c\.?|\btoutes taxes comprises\b"
                    r"|\btva (?:comprise|incluse)\b)", re.IGNORECASE)

# Deposits on returnable packaging and disbursements have DRC groups of their own (H and J).
_DRC_SPECIAL = re.compile(r"\b(?:consignation|consigne|débours|debours)\b", re.IGNORECASE)


@dataclass
class TaxMention:
    rate: str | None = None  # "21", "10.5", "16"... as written, "." decimal
    exempt: bool = False
    drc_group: str | None = None  # a DRC group named by its subject: H (consignation), J (débours)
    mode: str | None = None  # "net" or "gross"
    conflicting: bool = False


def find_tax(text: str) -> tuple[TaxMention, list[Span]]:
    tax, spans = TaxMention(), []
    rates = set()
    for m in _RATE.finditer(text):
        rates.add((m.group(1) or m.group(2)).replace(",", "."))
        spans.append(m.span())
    for m in _EXEMPT.finditer(text):
        tax.exempt = True
        spans.append(m.span())
    for m in _DRC_SPECIAL.finditer(text):
        tax.drc_group = "H" if m.group(0).lower().startswith("consign") else "J"
        spans.append(m.span())
    modes = set()
    for pattern, mode in ((_NET, "net"), (_GROSS, "gross")):
        for m in pattern.finditer(text):
            modes.add(mode)
            spans.append(m.span())
    if len(rates) > 1 or len(modes) > 1 or (rates and tax.exempt and rates != {"0"}):
        tax.conflicting = True
    tax.rate = min(rates) if rates else None
    tax.mode = modes.pop() if len(modes) == 1 else None
    return tax, spans


# ------------------------------------------------------------------------------------ due dates

_MONTHS = {m: i + 1 for i, m in enumerate(
    "enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre diciembre".split())}
_MONTHS.update({m: i + 1 for i, m in enumerate(
    "janvier février mars avril mai juin juillet août septembre octobre novembre décembre".split())})
_MONTHS.update({"setiembre": 9, "fevrier": 2, "aout": 8, "decembre": 12})
_DUE_WORD = (r"(?:vence|vencimiento|venc\.|pagadero|pagar|a pagar|plazo|échéance|echeance|payable|à payer|a payer"
             r"|au plus tard|paiement|pago)")
# "a 30 días", "à 30 jours", "dans 15 jours", "vence en 15 días", "plazo de 30 días"; a bare
# "de 3 jours" is a quantity ("formation de 3 jours"), not a term.
_IN_DAYS = re.compile(r"(?:" + _DUE_WORD + r"\s+(?:a|à|en|dans|de|sous)?|\ba\b|\bà\b|\bdans\b|\bsous\b)\s*(\d{1,3})\s+(?:días|dias|jours)\b"
                      r"(?:\s+(?:fecha factura|date de facture|fin de mois))?", re.IGNORECASE)
_ON_DATE = re.compile(_DUE_WORD + r"\s*:?\s*(?:el|le|antes del|avant le|au|al|hasta el|jusqu'au)?\s*"
                      r"(\d{1,2})\s*(?:[/.-]\s*(\d{1,2})(?:\s*[/.-]\s*(\d{2,4}))?|(?:de\s+)?([a-zéû]+)(?:\s+(?:de\s+)?(\d{4}))?)",
                      re.IGNORECASE)


_VAGUE_DUE = re.compile(r"\b(?:vence|vencimiento|venc\.|pagadero|plazo|échéance|echeance|payable|à payer|a payer|au plus tard"
                        r"|fin (?:du|de|de la) mois|fin de mes|à réception|a réception|contra entrega|contre remboursement"
                        r"|à la livraison|contado|comptant)\b", re.IGNORECASE)


def find_due_date(text: str, today: date) -> tuple[date | None, list[Span], bool]:
    """The due date, the spans used and whether a due phrase was seen but not understood."""
    m = _IN_DAYS.search(text)
    on = _ON_DATE.search(text)
    if m and on:
        # "vence el 15 de enero, a 30 días": two terms; neither wins silently.
        return None, [m.span(), on.span()], True
    if m:
        return today + timedelta(days=int(m.group(1))), [m.span()], False
    m = on
    if not m:
        vague = _VAGUE_DUE.search(text)
        # "vence mañana", "payable à réception", "fin du mois": a term seen and not read is asked.
        return None, ([vague.span()] if vague else []), bool(vague)
    day = int(m.group(1))
    if m.group(2):
        month, year = int(m.group(2)), m.group(3)
    else:
        month, year = _MONTHS.get((m.group(4) or "").lower(), 0), m.group(5)
    if not month:
        return None, [m.span()], True
    try:
        if year:
            due = date(int(year) + (2000 if len(year) == 2 else 0), month, day)
        else:
            # "vence el 15/01" written in December means next January: the next such day from today.
            due = date(today.year, month, day)
            if due < today:
                due = date(today.year + 1, month, day)
    except ValueError:
        return None, [m.span()], True
    return due, [m.span()], False
