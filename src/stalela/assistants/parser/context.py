"""What the parser knows of the tenant, and what it returns. Plain frozen data: the parser is pure,
so everything it may depend on is passed in here (including "today", for relative due dates)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

PARSER_VERSION = "rules-1.1.0"
ACCEPT_THRESHOLD = Decimal("0.85")

CD, AR = "CD", "AR"
# ISO currency -> the engine's code: the DRC uses ISO codes, Argentina ARCA's MonId ("PES", "DOL").
ENGINE_CURRENCY = {CD: {"CDF": "CDF", "USD": "USD"}, AR: {"ARS": "PES", "USD": "DOL"}}
HOME_CURRENCY = {CD: "CDF", AR: "ARS"}
# What a bare "$" means when the tenant says nothing: in the DRC prices in "$" are US dollars
# (the franc is written FC); in Argentina "$" is the peso sign, the dollar is "US$" or "U$S".
DEFAULT_DOLLAR = {CD: "USD", AR: "ARS"}


class Refused(Exception):
    """A hard failure: the request cannot become a draft whatever its score (``code`` is stable,
    ``reason`` is for the person who wrote the request)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


@dataclass(frozen=True)
class KnownBuyer:
    name: str
    tax_id: str | None = None  # DRC NIF or Argentine CUIT (digits)
    vat_condition: str | None = None  # Argentina only, when the tenant's records hold it


@dataclass(frozen=True)
class TenantContext:
    jurisdiction: str  # "CD" or "AR"
    today: date
    buyers: tuple[KnownBuyer, ...] = ()
    dollar: str | None = None  # what "$" means; None: DEFAULT_DOLLAR of the jurisdiction
    outlet_id: str = ""  # filled by the drafting service; the parser does not choose an outlet
    ar_issuer: str = "responsable_inscripto"  # or "monotributo" / "exento": decides A/B vs C

    @property
    def dollar_currency(self) -> str:
        return self.dollar or DEFAULT_DOLLAR[self.jurisdiction]


@dataclass
class Draft:
    """The parser's answer. ``invoice`` has the shape of ``POST /v1/invoices`` (no totals: the
    jurisdiction's engine computes them); the rest explains how sure we are and why."""
    invoice: dict[str, Any]
    confidence: Decimal
    field_confidences: dict[str, Decimal]
    reasons: list[str]
    questions: list[str]
    refusal: str | None  # a hard failure's code: the draft is refused whatever its score
    raw_score: Decimal
    due_date: date | None = None
    language: str = "es"
    parser_version: str = PARSER_VERSION

    @property
    def accepted(self) -> bool:
        return self.refusal is None and not self.questions and self.confidence >= ACCEPT_THRESHOLD

    def as_dict(self) -> dict[str, Any]:
        return {
            "invoice": self.invoice, "confidence": str(self.confidence),
            "field_confidences": {k: str(v) for k, v in sorted(self.field_confidences.items())},
            "reasons": list(self.reasons), "questions": list(self.questions), "refusal": self.refusal,
            "due_date": self.due_date.isoformat() if self.due_date else None,
            "language": self.language, "parser_version": self.parser_version,
            "accepted": self.accepted,
        }
