"""API models of returned batches (docs/offline.md, "Returning invoices")."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from stalela.kit.schemas import StrictModel

MAX_BATCH = 1_000  # invoices per batch: a block is returned in as many batches as it needs, in order


class BatchInvoice(StrictModel):
    # Both objects are checked invoice by invoice (as an InvoiceCreate, as a seal), so that one malformed
    # invoice is answered for itself and the rest of the batch still merges.
    request: dict[str, Any] = Field(description="The invoice, exactly as POST /v1/invoices takes it.")
    seal: dict[str, Any] = Field(description="The device's seal: payload, hash, signature, key_id, algorithm.")
    buyer_salt: str | None = Field(None, max_length=64, description="The salt of the payload's buyer_commitment "
                                   "(when the invoice has a buyer).")


class BatchCreate(StrictModel):
    credential: str = Field(min_length=1, max_length=8192, description="The delegated credential (compact JWS) "
                            "the invoices were sealed under.")
    invoices: list[BatchInvoice] = Field(min_length=1, max_length=MAX_BATCH,
                                         description="The device's invoices, in the order it sealed them.")
    # ``return`` is a Python keyword: the attribute is ``return_``, the JSON member ``return``.
    return_: dict[str, Any] | None = Field(None, alias="return", description="The device-signed block_return "
                                           "statement of the block's unused tail, voided once the invoices merged "
                                           "(as POST /v1/offline/blocks/{id}/return takes it).")


Outcome = Literal["merged", "refused", "held"]
