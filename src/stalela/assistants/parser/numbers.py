"""Numbers in Spanish and French requests: spelled numbers ("tres", "quatre-vingt-dix") and the
three decimal conventions ("1.234,56", "1,234.56", "1 234,56"). Pure, Decimal only.

Why our own converter: `text2num` (Allo-Media, MIT; the one library covering both languages, and
installable from our mirror) rewrites "por ciento" into "por 100" and works on whole sentences with
its own idea of where a number ends; the vocabulary invoice requests need is small (units, tens,
hundreds, thousands, millions), and 80 lines we can read keep the parser's output under our own
version number (PARSER_VERSION) instead of a native wheel's.
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_UNITS_ES = {
    "cero": 0, "un": 1, "uno": 1, "una": 1, "dos": 2, "tres": 3, "cuatro": 4, "cinco": 5, "seis": 6,
    "siete": 7, "ocho": 8, "nueve": 9, "diez": 10, "once": 11, "doce": 12, "trece": 13, "catorce": 14,
    "quince": 15, "dieciséis": 16, "dieciseis": 16, "diecisiete": 17, "dieciocho": 18,
    "diecinueve": 19, "veinte": 20, "veintiuno": 21, "veintiún": 21, "veintiuna": 21, "veintidós": 22,
    "veintidos": 22, "veintitrés": 23, "veintitres": 23, "veinticuatro": 24, "veinticinco": 25,
    "veintiséis": 26, "veintiseis": 26, "veintisiete": 27, "veintiocho": 28, "veintinueve": 29,
    "treinta": 30, "cuarenta": 40, "cincuenta": 50, "sesenta": 60, "setenta": 70, "ochenta": 80,
    "noventa": 90, "doscientos": 200, "doscientas": 200, "trescientos": 300, "trescientas": 300,
    "cuatrocientos": 400, "cuatrocientas": 400, "quinientos": 500, "quinientas": 500,
    "seiscientos": 600, "seiscientas": 600, "setecientos": 700, "setecientas": 700,
    "ochocientos": 800, "ochocientas": 800, "novecientos": 900, "novecientas": 900,
}
_UNITS_FR = {
    "zéro": 0, "zero": 0, "un": 1, "une": 1, "deux": 2, "trois": 3, "quatre": 4, "cinq": 5, "six": 6,
    "sept": 7, "huit": 8, "neuf": 9, "dix": 10, "onze": 11, "douze": 12, "treize": 13,
    "quatorze": 14, "quinze": 15, "seize": 16, "vingt": 20, "vingts": 20, "trente": 30,
    "quarante": 40, "cinquante": 50, "soixante": 60, "septante": 70, "huitante": 80, "octante": 80,
    "nonante": 90,
}
_HUNDRED = {"cien", "ciento", "cent", "cents"}
_THOUSAND = {"mil", "mille", "milles"}
_MILLION = {"millón", "millon", "millones", "million", "millions"}
_JOINERS = {"y", "et"}  # "treinta y tres", "vingt et un": only between two number words
_WORD = re.compile(r"[a-záéíóúüñàâçèêëîïôûù]+(?:-[a-záéíóúüñàâçèêëîïôûù]+)*", re.IGNORECASE)


def _word_value(word: str) -> int | None:
    low = word.lower()
    if low in _UNITS_ES:
        return _UNITS_ES[low]
    return _UNITS_FR.get(low)


def _is_number_word(word: str) -> bool:
    low = word.lower()
    return _word_value(low) is not None or low in _HUNDRED | _THOUSAND | _MILLION


def _value(words: list[str]) -> int:
    total, current, previous = 0, 0, ""
    for word in words:
        low = word.lower()
        if low in _HUNDRED:
            current = (current or 1) * 100
        elif low in _THOUSAND:
            total += (current or 1) * 1000
            current = 0
        elif low in _MILLION:
            total = (total + (current or 1)) * 1_000_000
            current = 0
        elif low in ("vingt", "vingts") and previous == "quatre":
            current += 80 - 4  # "quatre-vingt(s)" is 4 x 20, read left to right as 4 then 76 more
        else:
            current += _word_value(low) or 0
        previous = low
    return total + current


def _number_parts(word: str) -> list[str] | None:
    """The number words of a hyphenated compound, or None if it is not one. An inner "et"
    ("vingt-et-un", "soixante-et-onze") is a joiner, not a word: dropped when it sits between two
    number words (the review found "vingt-et-un" read as 1)."""
    parts = word.split("-")
    inner = [p for k, p in enumerate(parts) if not (p.lower() in _JOINERS and 0 < k < len(parts) - 1)]
    if inner and all(_is_number_word(p) for p in inner):
        return inner
    return None


_SCALE = {"mil": 1000, "mille": 1000, "millón": 1_000_000, "millon": 1_000_000, "millones": 1_000_000,
          "million": 1_000_000, "millions": 1_000_000}


def scaled_digits(text: str) -> str:
    """Digits followed by a scale word ("1 millón", "1,5 millones", "$2 mil", "2 millions de FC")
    become one number; run before the spelled words, which would read "millón" alone as 1000000.
    A "de" between the scale and a currency goes with it ("1 millón de pesos")."""
    def repl(m: re.Match[str]) -> str:
        reading = read_number(m.group("n"))
        value = reading.value * _SCALE[m.group("s").lower()] if reading else None
        if reading is None or reading.ambiguous or value != value.to_integral_value():
            # "1,500 millones": marked, so the draft refuses it (the spelled-number reader would
            # otherwise turn "millones" alone into a number).
            return f"{m.group('n')} ‹{m.group('s')}›"
        return str(int(value))
    return _SCALED.sub(repl, text)


def spelled_to_digits(text: str) -> str:
    """Replace every run of spelled number words by its digits ("tres horas" -> "3 horas",
    "quatre-vingt-dix" -> "90"). Hyphenated French compounds are split on their hyphens first.
    A lone joiner ("y", "et") stays a word: only one between two number words is absorbed."""
    out: list[str] = []
    pos = 0
    matches = list(_WORD.finditer(text))
    i = 0
    while i < len(matches):
        parts = _number_parts(matches[i].group(0))
        if parts is None:
            i += 1
            continue
        start, end, words = matches[i].start(), matches[i].end(), list(parts)
        j = i + 1
        while j < len(matches):
            gap = text[end:matches[j].start()]
            if gap.strip():  # punctuation or digits between: the number ends
                break
            nxt = _number_parts(matches[j].group(0)) or matches[j].group(0).split("-")
            if all(_is_number_word(p) for p in nxt):
                words += nxt
                end = matches[j].end()
                j += 1
            elif (nxt[0].lower() in _JOINERS and len(nxt) == 1 and j + 1 < len(matches)
                  and not text[matches[j].end():matches[j + 1].start()].strip()
                  and all(_is_number_word(p) for p in matches[j + 1].group(0).split("-"))):
                end = matches[j].end()  # the joiner itself; the next word is read on the next turn
                j += 1
            else:
                break
        out.append(text[pos:start])
        out.append(str(_value(words)))
        pos = end
        i = j
    out.append(text[pos:])
    return "".join(out)


# A number as people write it: digits with optional groups of three separated by ".", "," or a
# space, and an optional decimal part of one to three digits.
NUMBER = r"\d{1,3}(?:[ .,]\d{3})+(?:[.,]\d{1,3})?(?!\d)|\d+(?:[.,]\d{1,3})?(?!\d)"


class NumberReading:
    """The value of a written number and whether its separators left a doubt ("1.234" or "1,234":
    thousands or decimals?). The doubt lowers the draft's confidence; it is not a failure."""

    __slots__ = ("value", "ambiguous")

    def __init__(self, value: Decimal, ambiguous: bool) -> None:
        self.value = value
        self.ambiguous = ambiguous


def read_number(token: str) -> NumberReading | None:
    raw = token.strip().replace("\u00a0", " ").replace("\u202f", " ")
    dots, commas, spaces = raw.count("."), raw.count(","), raw.count(" ")
    ambiguous = False
    if dots and commas:
        # Both present: the last one written is the decimal mark ("1.234,56" and "1,234.56").
        decimal_mark = "," if raw.rfind(",") > raw.rfind(".") else "."
        group_mark = "." if decimal_mark == "," else ","
        normal = raw.replace(" ", "").replace(group_mark, "").replace(decimal_mark, ".")
    elif dots + commas == 0:
        normal = raw.replace(" ", "")
    else:
        mark = "." if dots else ","
        count = dots or commas
        tail = raw.rsplit(mark, 1)[1]
        if count > 1:
            normal = raw.replace(" ", "").replace(mark, "")  # "1.234.567": groups only
        elif len(tail) == 3 and not spaces:
            # "1.234" / "5,000": prices carry at most two decimals, so a group of three is read as
            # thousands (the usual reading in both markets), and flagged.
            normal = raw.replace(mark, "")
            ambiguous = True
        else:
            normal = raw.replace(" ", "").replace(mark, ".")  # "12,5", "1 234,56"
    try:
        value = Decimal(normal)
    except InvalidOperation:
        return None
    return NumberReading(value, ambiguous)


_SCALED = re.compile(rf"(?<![\d.,])(?P<n>{NUMBER})\s*(?P<s>millones|millón|millon|millions|million|mille|mil)\b"
                     r"(?P<tail>\s+de(?=\s+(?:pesos|d[oó]lares|dollars|francs|fc|cdf|usd|ars)\b)|\s+d'(?=\s*(?:usd|euros)))?",
                     re.IGNORECASE)
