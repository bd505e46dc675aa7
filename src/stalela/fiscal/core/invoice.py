"""The invoice as the pure fiscal core sees it: a draft going in, a computed invoice coming out.

Codes (invoice type, tax group, ...) are plain strings in the draft on purpose: the HTTP layer
passes through whatever the client sent and the jurisdiction rejects unknown codes with its own
stable rule codes, so one place (the jurisdiction's data) decides what is valid.

Amounts are ``Decimal``. A credit note carries positive amounts; its type (FA, EA) says it is a
credit, so totals never change sign with the document type.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any


from stalela.kit import canonical
from stalela.kit.money import decimal_str, money_str
from stalela.fiscal.core.disclosure import check_commitment

# --------------------------------------------------------------------------------------- input


@dataclass(frozen=True, kw_only=True)
class DraftLine:
    """One line as the client sent it. Which code says how it is taxed depends on the jurisdiction:
    the DRC uses ``item_type`` + ``tax_group``, Argentina ``vat_rate``; the others stay None."""

    description: str
    quantity: Decimal
    unit_price: Decimal
    item_type: str | None = None
    tax_group: str | None = None
    vat_rate: str | None = None
    code: str | None = None


@dataclass(frozen=True, kw_only=True)
class Buyer:
    """The DRC identifies a buyer by ``type`` (+ tax_id); Argentina by ``doc_type`` + ``doc_number``
    and its IVA condition (RG 5616)."""

    type: str | None = None
    name: str | None = None
    tax_id: str | None = None
    exemption_ref: str | None = None
    doc_type: str | None = None
    doc_number: str | None = None
    vat_condition: str | None = None


@dataclass(frozen=True, kw_only=True)
class Payment:
    method: str
    amount: Decimal


@dataclass(frozen=True, kw_only=True)
class Exchange:
    """A foreign-currency equivalent shown on the invoice; ``rate`` is base-currency units per 1."""

    currency: str
    rate: Decimal
    date: date | str


@dataclass(frozen=True, kw_only=True)
class InvoiceDraft:
    type: str
    price_mode: str | None = "ht"  # None: the jurisdiction's default (it may depend on the type)
    lines: tuple[DraftLine, ...] = ()
    buyer: Buyer | None = None
    nature: str | None = None
    original: str | None = None
    payments: tuple[Payment, ...] | None = None
    currency: str = "CDF"
    exchange: Exchange | None = None
    # Argentina (WSFEv1): what is sold, the service period, and the rate of a DOL invoice.
    concept: str | None = None
    service_from: date | str | None = None
    service_to: date | str | None = None
    payment_due: date | str | None = None
    exchange_rate: Decimal | None = None
    # The issuer's own tax status where it decides which documents it may issue (Argentina's IVA
    # condition decides the receipt letters); given by the caller from the tenant, never the client.
    issuer_vat_condition: str | None = None

    def __post_init__(self) -> None:
        # Callers building drafts from JSON naturally pass lists; freeze them so the draft stays
        # hashable and cannot change between validation and computation.
        if not isinstance(self.lines, tuple):
            object.__setattr__(self, "lines", tuple(self.lines))
        if self.payments is not None and not isinstance(self.payments, tuple):
            object.__setattr__(self, "payments", tuple(self.payments))


@dataclass(frozen=True, kw_only=True)
class OriginalInvoice:
    """What the caller found in its database for a credit note's ``original``.

    ``credited_total`` is the sum of the totals of the credit notes already sealed against it.
    """

    fiscal_number: str
    type: str
    total: Decimal
    credited_total: Decimal = Decimal("0.00")
    # What a jurisdiction's own block says of the original (Argentina: CbtesAsoc needs its point of
    # sale, number and date): the ``extra`` of its sealed document, or None.
    extra: dict[str, Any] | None = None


# -------------------------------------------------------------------------------------- output


@dataclass(frozen=True, slots=True)
class ComputedLine:
    index: int  # 0-based, the same index as in the error field paths ("lines[2].quantity")
    description: str
    code: str | None
    item_type: str | None
    tax_group: str  # the totals group the line counts in (Argentina: its vat_rate code)
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal
    vat_rate: str | None = None  # Argentina's rate code; the DRC leaves it None

    def as_json(self) -> dict[str, Any]:
        # The DRC's shape is unchanged since seal v1 (lines_hash commits to it); a rate-coded line
        # (Argentina) says its vat_rate instead of an item type and group.
        if self.vat_rate is not None:
            return {
                "index": self.index,
                "description": self.description,
                "code": self.code,
                "vat_rate": self.vat_rate,
                "quantity": decimal_str(self.quantity),
                "unit_price": money_str(self.unit_price),
                "amount": money_str(self.amount),
            }
        return {
            "index": self.index,
            "description": self.description,
            "code": self.code,
            "item_type": self.item_type,
            "tax_group": self.tax_group,
            "quantity": decimal_str(self.quantity),
            "unit_price": money_str(self.unit_price),
            "amount": money_str(self.amount),
        }


@dataclass(frozen=True, slots=True)
class GroupTotal:
    group: str
    rate: Decimal
    amount: Decimal  # sum of the group's line amounts, as priced (before or tax included)
    base: Decimal
    vat: Decimal

    def as_json(self) -> dict[str, str]:
        return {
            "group": self.group,
            "rate": decimal_str(self.rate),
            "amount": money_str(self.amount),
            "base": money_str(self.base),
            "vat": money_str(self.vat),
        }


@dataclass(frozen=True, slots=True)
class Totals:
    groups: tuple[GroupTotal, ...]  # only the groups present on the invoice, sorted by letter
    total: Decimal
    vat_settled_by_credit: Decimal
    payable: Decimal

    def group(self, letter: str) -> GroupTotal | None:
        return next((g for g in self.groups if g.group == letter), None)

    def as_json(self) -> dict[str, Any]:
        return {
            "groups": [g.as_json() for g in self.groups],
            "total": money_str(self.total),
            "vat_settled_by_credit": money_str(self.vat_settled_by_credit),
            "payable": money_str(self.payable),
        }


@dataclass(frozen=True, slots=True)
class ExchangeInfo:
    currency: str
    rate: Decimal
    date: date
    total_foreign: Decimal

    def as_json(self) -> dict[str, str]:
        return {
            "currency": self.currency,
            "rate": decimal_str(self.rate),
            "date": self.date.isoformat(),
            "total_foreign": money_str(self.total_foreign),
        }


@dataclass(frozen=True, slots=True)
class ComputedInvoice:
    jurisdiction: str
    type: str
    price_mode: str
    currency: str
    lines: tuple[ComputedLine, ...]
    totals: Totals
    buyer: Buyer | None
    nature: str | None
    original: str | None
    payments: tuple[Payment, ...] | None
    exchange: ExchangeInfo | None = field(default=None)
    # The jurisdiction's own block, JSON-ready (Argentina: what WSFEv1 is sent). Sealed under the key
    # ``jurisdiction.lower()`` of the payload and the document; None for the DRC.
    extra: dict[str, Any] | None = field(default=None)

    @property
    def total(self) -> Decimal:
        return self.totals.total

    def lines_as_json(self) -> list[dict[str, Any]]:
        return [line.as_json() for line in self.lines]

    def totals_as_json(self) -> dict[str, Any]:
        return self.totals.as_json()

    def exchange_as_json(self) -> dict[str, str] | None:
        return self.exchange.as_json() if self.exchange else None

    def buyer_as_json(self) -> dict[str, str | None] | None:
        if self.buyer is None:
            return None
        b = self.buyer
        if b.doc_type is not None or b.vat_condition is not None:
            return {"doc_type": b.doc_type, "doc_number": b.doc_number, "name": b.name,
                    "vat_condition": b.vat_condition}
        return {
            "type": b.type, "name": b.name, "tax_id": b.tax_id, "exemption_ref": b.exemption_ref
        }

    def payments_as_json(self) -> list[dict[str, str]] | None:
        if self.payments is None:
            return None
        return [{"method": p.method, "amount": money_str(p.amount)} for p in self.payments]

    def lines_digest(self) -> str:
        return lines_digest(self.lines_as_json())

    def as_json(self) -> dict[str, Any]:
        return {
            "jurisdiction": self.jurisdiction,
            "type": self.type,
            "price_mode": self.price_mode,
            "currency": self.currency,
            "buyer": self.buyer_as_json(),
            "nature": self.nature,
            "original": self.original,
            "lines": self.lines_as_json(),
            "totals": self.totals_as_json(),
            "payments": self.payments_as_json(),
            "exchange": self.exchange_as_json(),
            **({self.jurisdiction.lower(): self.extra} if self.extra is not None else {}),
        }


def lines_digest(lines_json: list[dict[str, Any]]) -> str:
    """Lowercase hex SHA-256 of the RFC 8785 canonical JSON of the canonical lines.

    The seal signs this digest instead of the lines themselves, so the payload stays small for a
    thousand-line invoice while still committing to every line.
    """
    return hashlib.sha256(canonical.dumps(lines_json)).hexdigest()


# Fields that appear both in the sealed payload and in the invoice document; they must agree.
SEALED_DOCUMENT_FIELDS = ("fiscal_number", "counter", "type", "price_mode", "issued_at", "currency", "outlet_id",
                          "tenant_id", "nature", "original", "totals", "exchange")


def document_mismatch(document: Any, payload: Any, *, present_only: bool = False) -> tuple[str, str] | None:
    """The first way an invoice document disagrees with its signed payload, as (code, reason), or None: a
    mirrored field, its id, its lines (digest and count), a disclosed buyer against the signed commitment.
    One check for ``stalela verify`` (fiscal.ledger.verify) and the SDK's offline verification.
    ``present_only``: a field the document leaves out is not compared (a client's partial copy)."""
    for name in SEALED_DOCUMENT_FIELDS:
        if (not present_only or name in document) and document.get(name) != payload.get(name):
            return "document_altered", f"{name} differs from the sealed value"
    if document.get("id") != payload.get("invoice_id"):
        return "document_altered", "id differs from the sealed invoice_id"
    lines = document.get("lines")
    try:
        digest = lines_digest(lines)
    except Exception:  # noqa: BLE001 - hostile input (lines JCS cannot encode are not the sealed ones): report
        digest = None
    if digest != payload.get("lines_hash") or len(lines or []) != payload.get("line_count"):
        return "lines_altered", "the lines do not match the sealed lines_hash"
    # Seal v2: a disclosed buyer (and its salt) must match the signed commitment. An undisclosed one
    # (erased, restricted, or left out of the export) proves nothing and breaks nothing.
    commitment = payload.get("buyer_commitment")
    if commitment is not None and document.get("buyer") is not None \
            and not check_commitment(commitment, document.get("buyer_salt"), document.get("buyer")):
        return "buyer_altered", "the buyer or its salt does not match the sealed buyer_commitment"
    return None


# ------------------------------------------------------------------------------- from a request


def _amount(value: Any) -> Any:
    """A JSON amount as a Decimal: a string or an integer converts; anything else (a float, a bad string)
    goes through unchanged for the jurisdiction to refuse with its own code (``check_decimal``)."""
    if isinstance(value, Decimal) or isinstance(value, bool):
        return value
    if isinstance(value, (int, str)):
        try:
            return Decimal(value) if isinstance(value, int) else Decimal(value.strip())
        except ArithmeticError:
            return value
    return value


def draft_from_request(req: Any, default_currency: str, issuer_vat_condition: str | None = None) -> InvoiceDraft:
    """The draft of an invoice request as ``POST /v1/invoices`` takes it (a JSON object, or the API
    schema's ``model_dump()``): one build for the cloud's sealing (``sealing.to_draft``), the merge of
    returned offline invoices and the SDK's offline sealer, so a device and the cloud compute the same
    invoice from the same request."""
    b = req.get("buyer")
    exchange = req.get("exchange")
    payments = req.get("payments")
    rate = req.get("exchange_rate")
    return InvoiceDraft(
        type=req.get("type"),
        price_mode=req.get("price_mode"),
        lines=tuple(
            DraftLine(description=ln.get("description"), code=ln.get("code"), item_type=ln.get("item_type"),
                      tax_group=ln.get("tax_group"), vat_rate=ln.get("vat_rate"), quantity=_amount(ln.get("quantity")),
                      unit_price=_amount(ln.get("unit_price")))
            for ln in req.get("lines") or ()
        ),
        buyer=Buyer(type=b.get("type"), name=b.get("name"), tax_id=b.get("tax_id"),
                    exemption_ref=b.get("exemption_ref"), doc_type=b.get("doc_type"), doc_number=b.get("doc_number"),
                    vat_condition=b.get("vat_condition"))
        if b else None,
        nature=req.get("nature"),
        original=req.get("original"),
        payments=tuple(Payment(method=p.get("method"), amount=_amount(p.get("amount"))) for p in payments)
        if payments is not None else None,
        currency=req.get("currency") or default_currency,
        exchange=Exchange(currency=exchange.get("currency"), rate=_amount(exchange.get("rate")),
                          date=exchange.get("date"))
        if exchange else None,
        concept=req.get("concept"),
        service_from=req.get("service_from"),
        service_to=req.get("service_to"),
        payment_due=req.get("payment_due"),
        exchange_rate=_amount(rate) if rate is not None else None,
        issuer_vat_condition=issuer_vat_condition,
    )
