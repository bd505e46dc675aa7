"""Argentina's CUIT / CUIL (Clave Única de Identificación Tributaria / Laboral): 11 digits whose last
one is a mod-11 check digit. Pure: accounts uses it for an AR tenant's ``tax_id``, the AR engine for
a buyer identified by CUIT or CUIL (the two share one format and one check digit).

Layout: ``PP-NNNNNNNN-C``. ``PP`` is the kind (20, 23, 24, 27: natural persons; 30, 33, 34:
companies; 50-55: the generic CUITs ARCA gives foreign countries), ``NNNNNNNN`` the DNI for a person
or a sequence for a company, ``C`` the check digit.

Check digit: the first ten digits are weighted 5, 4, 3, 2, 7, 6, 5, 4, 3, 2 and summed;
``r = sum % 11``; ``C = 11 - r``, read as 0 when ``r`` is 0. When ``r`` is 1, ``11 - r`` is 10, which
is not a digit, so **no** valid CUIT exists for that prefix and body. That is why ARCA (ex-AFIP)
moves such a number to another prefix when it assigns it: a man's 20 or a woman's 27 becomes 23, a
company's 30 becomes 33 (24 and 34 are the further fall-backs). The change of prefix shifts the sum
so that a digit exists: 20 -> 23 adds 3 x 4 = 12 = 1 (mod 11), so ``r`` becomes 2 and ``C`` 9; 27 -> 23
subtracts 4 x 4 = 16 = 6 (mod 11), so ``r`` becomes 7 and ``C`` 4. The same formula therefore
validates every prefix, including 23/24/33/34; there is no special case in the check, only in how
numbers are assigned. A number whose remainder is 1 under its own prefix is refused, whatever the
prefix.

We do not restrict the prefix: the list of kinds has grown before (the 50-55 country CUITs are
valid identifiers on receipts to foreign clients), and the check digit already rejects a typo.
"""
from __future__ import annotations

WEIGHTS = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
LENGTH = 11


class InvalidCuit(ValueError):
    """``reason`` is ``"format"`` (not 11 digits) or ``"check_digit"`` (the last digit is wrong)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def check_digit(first_ten: str) -> int | None:
    """The check digit of the first ten digits, or None when no digit exists (remainder 1)."""
    if len(first_ten) != LENGTH - 1 or not _all_ascii_digits(first_ten):
        raise ValueError(f"check_digit: 10 digits expected, got {first_ten!r}")
    remainder = sum(int(d) * w for d, w in zip(first_ten, WEIGHTS)) % 11
    if remainder == 0:
        return 0
    if remainder == 1:
        return None
    return 11 - remainder


def normalize_cuit(text: object) -> str | None:
    """The 11 digits of ``text`` written either ``20267565393`` or ``20-26756539-3``; None when
    ``text`` is neither shape (no check-digit test here)."""
    if not isinstance(text, str):
        return None
    if len(text) == LENGTH + 2 and text[2] == "-" and text[11] == "-":
        text = text[:2] + text[3:11] + text[12:]
    if len(text) != LENGTH or not _all_ascii_digits(text):
        return None
    return text


def check_cuit(text: object) -> str:
    """Return the CUIT/CUIL as 11 digits, or raise `InvalidCuit`.

    Accepts the bare 11 digits or the printed ``PP-NNNNNNNN-C`` form, nothing else (no spaces, no
    dots): the normalised form is what is stored and sent to ARCA, so one number has one spelling.
    """
    digits = normalize_cuit(text)
    if digits is None:
        raise InvalidCuit("format", "a CUIT/CUIL is 11 digits (20267565393 or 20-26756539-3)")
    expected = check_digit(digits[:10])
    if expected is None:
        raise InvalidCuit("check_digit",
                          f"no valid CUIT/CUIL starts with {digits[:10]} (its remainder is 1)")
    if int(digits[10]) != expected:
        raise InvalidCuit("check_digit", f"the check digit of {digits[:10]} is {expected}, "
                                         f"not {digits[10]}")
    return digits


def is_valid_cuit(text: object) -> bool:
    try:
        check_cuit(text)
    except InvalidCuit:
        return False
    return True


def format_cuit(digits: str) -> str:
    """``20267565393`` -> ``20-26756539-3`` (for display; stored and sent as the bare digits)."""
    valid = check_cuit(digits)
    return f"{valid[:2]}-{valid[2:10]}-{valid[10]}"


def _all_ascii_digits(text: str) -> bool:
    # str.isdigit accepts "²" and Arabic-Indic digits; a CUIT is ASCII 0-9 only.
    return all("0" <= c <= "9" for c in text)
