"""The independent baseline of bench/targets.py: a plain FastAPI app with nothing of Stalela in it.

One POST route whose body is the invoice bench/seal.py sends (outlet, type, lines with decimal strings,
an optional buyer, ...), validated by pydantic v2 models written here, answered 201 with a small JSON.
It is what "the same request in a plain FastAPI service" costs on this machine: HTTP parsing, routing,
JSON decoding and model validation, the response's encoding. A seal costs that plus the fiscal work,
so "single seals / plain POST" says how much of the plain service's rate sealing keeps.

Served the way `stalela serve` is: ``python -m uvicorn bench._plain_app:app --workers N`` from the
repository root, with uvicorn's defaults (httptools and uvloop when installed) and no access log.
Stalela is deliberately not imported: the baseline must not move when Stalela does.
"""
from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Annotated

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

Amount = Annotated[Decimal, Field(max_digits=18, allow_inf_nan=False)]
Code = Annotated[str, Field(max_length=16)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Line(_Model):
    description: str = Field(max_length=1000)
    code: str | None = Field(None, max_length=64)
    item_type: Code | None = None
    tax_group: Code | None = None
    vat_rate: Code | None = None
    quantity: Amount
    unit_price: Amount


class Buyer(_Model):
    type: Code | None = None
    name: str | None = Field(None, max_length=200)
    tax_id: str | None = Field(None, max_length=64)
    email: str | None = Field(None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    phone: str | None = Field(None, max_length=40)
    address: str | None = Field(None, max_length=500)
    reference: str | None = Field(None, max_length=100)


class Payment(_Model):
    method: Code
    amount: Amount


class Invoice(_Model):
    outlet_id: str = Field(max_length=64)
    type: Code
    price_mode: Code | None = None
    lines: list[Line] = Field(min_length=1, max_length=10_000)
    buyer: Buyer | None = None
    payments: list[Payment] | None = Field(None, max_length=100)
    currency: Code | None = None
    reference: str | None = Field(None, min_length=1, max_length=100)


class Accepted(BaseModel):
    id: str
    outlet_id: str
    lines: int


app = FastAPI(title="plain baseline", openapi_url=None, docs_url=None, redoc_url=None)


@app.post("/invoices", status_code=201, response_model=Accepted)
async def create_invoice(body: Invoice) -> Accepted:
    # outlet_id in the answer, as a seal's 201 has it: the load generators count 201s per outlet from it.
    return Accepted(id=secrets.token_hex(8), outlet_id=body.outlet_id, lines=len(body.lines))
