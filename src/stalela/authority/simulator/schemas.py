"""The shape of ``POST /api/invoice`` as the simulated authority checks it.

Bodies are decoded with ``parse_float=Decimal`` before they reach these models, so a JSON number
such as ``0.1`` is never a binary float on its way to a money amount. Unknown fields are allowed:
the real e-MCF accepts more (``taxSpecificAmount``, currency dates...) than the simulator reads.
"""
from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from .faults import describe_validation_error
from .totals import TAX_GROUPS

# Refuse absurd magnitudes: a quantity like 1E+999999 would make quantize() explode.
MAX_VALUE = Decimal("1E16")

NonBlank = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
TaxGroup = Literal[tuple(TAX_GROUPS)]  # type: ignore[valid-type]
InvoiceType = Literal["FV", "FT", "FA", "EV", "ET", "EA"]
ClientType = Literal["PP", "PM", "PC", "PL", "AO"]
PaymentName = Literal[
    "ESPECES", "VIREMENT", "CARTEBANCAIRE", "MOBILEMONEY", "CHEQUES", "CREDIT", "AUTRE"
]

# Item type -> the tax groups it may use (TAX lines are levies: L, or the specific VAT N).
ITEM_GROUPS = {"BIE": frozenset("ABCDEFGHIJKM"), "SER": frozenset("ABCDEFGHIJKM"),
               "TAX": frozenset("LN")}
# Client types that must name the buyer and/or give its tax id.
CLIENT_REQUIRES = {"PM": ("name", "nif"), "PC": ("name", "nif"), "PL": ("name", "nif"),
                   "AO": ("name",)}


def _finite(value: Decimal) -> Decimal:
    if not value.is_finite() or abs(value) >= MAX_VALUE:
        raise ValueError(f"must be a finite number below {MAX_VALUE:f}")
    return value


Amount = Annotated[Decimal, AfterValidator(_finite)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class Item(_Model):
    code: str | None = None
    type: Literal["BIE", "SER", "TAX"]
    name: NonBlank
    price: Annotated[Amount, Field(ge=0)]
    quantity: Annotated[Amount, Field(gt=0)]
    taxGroup: TaxGroup

    @model_validator(mode="after")
    def _group_fits_type(self) -> Item:
        if self.taxGroup not in ITEM_GROUPS[self.type]:
            allowed = "".join(sorted(ITEM_GROUPS[self.type]))
            raise ValueError(f"a {self.type} item must be in one of the groups {allowed}")
        return self


class Client(_Model):
    type: ClientType
    nif: str | None = None
    name: str | None = None

    @model_validator(mode="after")
    def _required_fields(self) -> Client:
        for field in CLIENT_REQUIRES.get(self.type, ()):
            value = getattr(self, field)
            if not value or not value.strip():
                raise ValueError(f"a {self.type} client needs a {field}")
        return self


class Operator(_Model):
    id: NonBlank
    name: NonBlank


class Payment(_Model):
    name: PaymentName
    amount: Amount


class InvoiceRequestBody(_Model):
    nif: NonBlank
    rn: NonBlank
    mode: Literal["ht", "ttc"]
    type: InvoiceType
    items: Annotated[list[Item], Field(min_length=1, max_length=1000)]
    client: Client | None = None
    operator: Operator
    payment: list[Payment] = Field(default_factory=list)
    reference: str | None = None
    curCode: str | None = None
    curRate: Annotated[Amount, Field(gt=0)] | None = None


class InvalidRequest(ValueError):
    """The body is not a valid invoice request; the message says where."""


def parse_invoice_request(raw: bytes) -> InvoiceRequestBody:
    try:
        data = json.loads(raw or b"null", parse_float=Decimal)
    except (ValueError, InvalidOperation) as exc:
        raise InvalidRequest(f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRequest("body must be a JSON object")
    try:
        return InvoiceRequestBody.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(describe_validation_error(exc)) from None
