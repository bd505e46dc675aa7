"""The thin payloads the authority's events carry to merchants (allow-listed fields only)."""
from __future__ import annotations

from stalela.webhooks.events import INVOICE_ACKNOWLEDGED, INVOICE_SYNC_FAILED, thin_data

INVOICE = {"invoice_id": "inv_1", "outlet_id": "out_1", "fiscal_number": "B 00003-00000001",
           "buyer": {"name": "never sent"}}


def test_arcas_refusal_says_rejected_and_the_dgis_says_failed():
    arca = thin_data(INVOICE_SYNC_FAILED, {"invoice_id": "inv_1", "code": "arca_rejected", "status": "rejected",
                                           "detail": "10015: …"}, INVOICE)
    assert arca == {"invoice_id": "inv_1", "outlet_id": "out_1", "fiscal_number": "B 00003-00000001",
                    "status": "rejected", "code": "arca_rejected"}
    dgi = thin_data(INVOICE_SYNC_FAILED, {"invoice_id": "inv_1", "code": "totals_mismatch"}, INVOICE)
    assert dgi["status"] == "failed" and "detail" not in dgi


def test_a_cae_carries_its_due_date_and_a_late_approval_says_so():
    data = thin_data(INVOICE_ACKNOWLEDGED, {"invoice_id": "inv_1", "authority_code": "71263951827760",
                                            "counters": None, "cae_due": "2026-12-16", "after_rejection": True},
                     INVOICE)
    assert data["status"] == "acknowledged" and data["cae_due"] == "2026-12-16" and data["after_rejection"] is True
    assert "buyer" not in data
