"""Fiscal numbers: ``{outlet_code}-{counter}``, the counter zero-padded to 8 digits.

``SHOP1`` and counter 42 give ``SHOP1-00000042``. The counter is the outlet's gap-free sealing
counter (from 1); past 99,999,999 it simply grows wider (``SHOP1-100000000``), so numbers never
wrap and stay unique. Zero-padding keeps the numbers of one outlet sorting in sealing order for
counters up to eight digits.

The counter is everything after the LAST hyphen, so an outlet code may itself contain hyphens.
Parsing is strict: only the exact text `format_fiscal_number` produces is accepted, so one invoice
has one fiscal number (``SHOP1-42`` or ``SHOP1-000000042`` are not aliases of ``SHOP1-00000042``).
"""
from __future__ import annotations

import re
from typing import NamedTuple

COUNTER_WIDTH = 8
SEPARATOR = "-"
# The outlet codes tenancy accepts (letters, digits, "_" and "-", 1 to 32 characters): safe in
# URLs, file names and QR text without escaping.
OUTLET_CODE_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,32}")
_COUNTER_PATTERN = re.compile(r"[0-9]{%d,}" % COUNTER_WIDTH)


class FiscalNumber(NamedTuple):
    outlet_code: str
    counter: int

    def __str__(self) -> str:
        return format_fiscal_number(self.outlet_code, self.counter)


def format_fiscal_number(outlet_code: str, counter: int) -> str:
    """Raises ``ValueError`` for an invalid outlet code or a counter below 1."""
    if not isinstance(outlet_code, str) or not OUTLET_CODE_PATTERN.fullmatch(outlet_code):
        raise ValueError(f"invalid outlet code {outlet_code!r}")
    if isinstance(counter, bool) or not isinstance(counter, int) or counter < 1:
        raise ValueError(f"invalid counter {counter!r}: must be an integer >= 1")
    return f"{outlet_code}{SEPARATOR}{counter:0{COUNTER_WIDTH}d}"


def parse_fiscal_number(text: str) -> FiscalNumber:
    """Inverse of `format_fiscal_number`; ``ValueError`` for any text it would not produce."""
    if not isinstance(text, str):
        raise ValueError("a fiscal number is a string")
    outlet_code, sep, digits = text.rpartition(SEPARATOR)
    if not sep or not _COUNTER_PATTERN.fullmatch(digits):
        raise ValueError(f"invalid fiscal number {text!r}")
    counter = int(digits)
    try:
        canonical = format_fiscal_number(outlet_code, counter)
    except ValueError as exc:
        raise ValueError(f"invalid fiscal number {text!r}: {exc}") from exc
    if canonical != text:
        raise ValueError(f"invalid fiscal number {text!r}: not in canonical form")
    return FiscalNumber(outlet_code, counter)


def is_fiscal_number(text: object) -> bool:
    try:
        parse_fiscal_number(text)  # type: ignore[arg-type]
    except ValueError:
        return False
    return True
