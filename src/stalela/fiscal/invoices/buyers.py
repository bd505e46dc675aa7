"""The buyer of sealed invoices, read back for whoever may see it (seal v2 keeps it encrypted).

``render`` shows a document as stored; these add its buyer: ``buyer`` and ``buyer_salt`` (the
disclosure a reader checks against ``seal.payload.buyer_commitment``), or ``buyer: null`` with
``buyer_status`` ``restricted`` (erasure asked, kept for the tax obligation) or ``erased``.
"""
from __future__ import annotations

import json
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from stalela.config import Settings
from stalela.fiscal.invoices.models import Invoice
from stalela.fiscal.subjects.service import Purpose, Sealed, reveal


async def reveal_buyers(session: AsyncSession, settings: Settings, tenant_id: str, invoices: list[Invoice], *,
                        purpose: Purpose) -> dict[str, dict[str, Any]]:
    """invoice id → the fields to lay over its document (only invoices whose buyer is sealed away)."""
    items = [Sealed(inv.id, inv.buyer_subject, inv.buyer_sealed, json.loads(inv.payload).get("buyer_commitment"))
             for inv in invoices if inv.buyer_subject is not None and inv.buyer_sealed is not None]
    if not items:
        return {}
    shown = await reveal(session, settings, tenant_id, items, purpose=purpose)
    out: dict[str, dict[str, Any]] = {}
    for invoice_id, seen in shown.items():
        if "buyer" in seen:
            out[invoice_id] = {"buyer": seen["buyer"], "buyer_salt": seen["salt"],
                               **({"buyer_status": "restricted"} if seen["status"] == "restricted" else {})}
        else:
            out[invoice_id] = {"buyer": None, "buyer_salt": None, "buyer_status": seen["status"]}
    return out
