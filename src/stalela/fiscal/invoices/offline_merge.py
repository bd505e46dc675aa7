"""Invoices sealed by a device, written into the ledger on their return (docs/offline.md, "Returning invoices").

Two halves, both fiscal knowledge, so both here beside the online pipeline (``sealing.py``):
- ``recompute``: what the device *should* have signed for a request, by the jurisdiction's engine and the
  credential's numbering, with the one payload builder (``core.offline.invoice_payload``). The merge
  compares it, member by member, with what the device did sign.
- ``OfflineInvoices``: a merged invoice leaves exactly what an online seal leaves (sealing.py's helpers: the
  row, the day figures, the sync state, the ``invoice.sealed`` event), plus ``origin='offline'`` and
  ``merged_at``; its leaf is the device seal's hash, appended by the caller's ``LogAppender`` in device order.

Deciding whether an invoice merges (signatures, chain, times, caps) is the offline package's
(``stalela.offline.batch_checks``); nothing here reads the credential's table.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from stalela.config import Settings
from stalela.fiscal.core import invoice as core
from stalela.fiscal.core.offline import clear_tax_id, invoice_payload
from stalela.fiscal.core.reports import local_date
from stalela.fiscal.core.seal import canonical_bytes
from stalela.fiscal.invoices.figures import DayBook, day_position
from stalela.fiscal.invoices.repository import InvoiceRepository, SyncStateRepository
from stalela.fiscal.invoices.sealing import (
    SEAL_VERSION,
    buyer_json,
    invoice_row,
    sealed_document,
    sealed_event,
    sync_row,
    to_draft,
)
from stalela.fiscal.invoices.schemas import InvoiceCreate
from stalela.fiscal.jurisdictions import get_jurisdiction
from stalela.fiscal.ledger.service import LogAppender
from stalela.fiscal.subjects.service import BuyerVault, SealedBuyer
from stalela.kit.clock import rfc3339
from stalela.observability.metrics import invoice_sealed
from stalela.outbox.service import enqueue_many
from stalela.tenancy.models import Outlet


@dataclass(frozen=True)
class Numbering:
    """What a credential fixes of every payload its device signs (its claims, checked by the caller)."""
    jurisdiction: str
    tenant_id: str
    seller_tax_id: str | None
    outlet_id: str
    outlet_code: str
    pos_number: int | None
    series_id: str
    series_generation: int
    series_first: int
    device_key: str  # the cnf key's thumbprint: the payload's key_id
    offline: dict[str, str]  # core.offline.offline_marker(...)


@dataclass
class Recomputed:
    computed: core.ComputedInvoice
    lines_json: list[dict[str, Any]]
    buyer: dict[str, Any] | None  # the sealed document's buyer (core.offline.buyer_document)
    payload: dict[str, Any]  # what the device should have signed


def fiscal_number(numbering: Numbering, invoice_type: str, counter: int) -> str:
    return get_jurisdiction(numbering.jurisdiction).fiscal_number(
        numbering.outlet_code, numbering.pos_number, invoice_type, counter, numbering.series_generation)


def recompute(req: InvoiceCreate, numbering: Numbering, signed: dict[str, Any]) -> Recomputed:
    """The expected payload of ``req`` at the signed payload's number. Raises the jurisdiction's
    ``StalelaError`` (a rule the request breaks). The members the device alone decides (its invoice id,
    its time, its chain link, the buyer's salted commitment) are taken from ``signed``; they are checked
    apart (the id is free, the time within the credential, the link in the block chain, the commitment
    against the salt)."""
    jurisdiction = get_jurisdiction(numbering.jurisdiction)
    computed = jurisdiction.compute(to_draft(req, jurisdiction), None)
    lines_json = computed.lines_as_json()
    buyer = buyer_json(computed, req)
    counter = signed["counter"]
    payload = invoice_payload(
        version=SEAL_VERSION, jurisdiction=jurisdiction.code, tenant_id=numbering.tenant_id,
        seller_tax_id=numbering.seller_tax_id, outlet_id=numbering.outlet_id, series_id=numbering.series_id,
        counter=counter, fiscal_number=fiscal_number(numbering, req.type, counter),
        invoice_id=signed.get("invoice_id"), type=req.type, price_mode=computed.price_mode,
        issued_at=signed.get("issued_at"), currency=computed.currency, totals=computed.totals_as_json(),
        lines_hash=core.lines_digest(lines_json), line_count=len(computed.lines),
        buyer_tax_id=clear_tax_id(buyer), buyer_commitment=signed.get("buyer_commitment") if buyer else None,
        nature=req.nature, original=req.original, exchange=computed.exchange_as_json(), key_id=numbering.device_key,
        prev_hash=signed.get("prev_hash"), series_first=numbering.series_first, offline=numbering.offline)
    return Recomputed(computed, lines_json, buyer, payload)


def merged_day(document: dict[str, Any]) -> date | None:
    """The business day the merge gave an offline invoice (its document's ``offline.business_day``); None for
    an online invoice, or one merged before the day was kept."""
    day = (document.get("offline") or {}).get("business_day")
    return date.fromisoformat(day) if isinstance(day, str) else None


def differences(expected: dict[str, Any], signed: dict[str, Any]) -> list[str]:
    """The payload members that differ (or are missing, or extra), sorted."""
    return sorted(k for k in expected.keys() | signed.keys() if expected.get(k, ...) != signed.get(k, ...))


@dataclass
class OfflineInvoices:
    """The merged invoices of one batch: appended to the log in device order, written once (``flush``).
    The caller holds the tenant's log lock (``LogAppender``), which also serialises the day figures with
    sealing and day closes (figures.py)."""
    session: AsyncSession
    settings: Settings
    tenant_id: str
    log: LogAppender
    book: DayBook = field(init=False)
    vault: BuyerVault = field(init=False)
    invoices: list[dict] = field(default_factory=list)
    syncs: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.book = DayBook(self.session)
        self.vault = BuyerVault(self.session, self.settings, self.tenant_id)

    async def ids_taken(self, ids: list[str]) -> set[str]:
        return {inv.id for inv in await InvoiceRepository(self.session).many(ids)}

    async def references_taken(self, wanted: set[tuple[str, str]]) -> set[tuple[str, str]]:
        return await InvoiceRepository(self.session).references_taken(wanted)

    async def seal_buyer(self, req: InvoiceCreate, buyer: dict[str, Any] | None, salt: str | None) -> SealedBuyer | None:
        """The buyer stored as an online seal stores it (encrypted under its subject's key when personal),
        with the device's salt, so the signed commitment holds. Raises ``SubjectErased``."""
        return await self.vault.seal(buyer, new_subject=bool(req.buyer and req.buyer.new_subject), salt=salt)

    async def add(self, outlet: Outlet, series_code: str, req: InvoiceCreate, r: Recomputed, seal: dict[str, Any],
                  sold_to: SealedBuyer | None, *, issued: datetime, merged_at: datetime, late: bool,
                  signed: bytes | None = None) -> dict[str, Any]:
        """One merged invoice (its seal verified, its payload equal to ``r.payload``); returns its document.
        ``signed``: the payload's canonical bytes, when the caller has them from verifying the seal."""
        payload = seal["payload"]
        marker = payload["offline"]
        offline = {"credential": marker["credential"], "block_id": marker["block_id"], "device_id": marker["device_id"],
                   "merged_at": rfc3339(merged_at), "late": late}
        document = sealed_document(self.settings, self.tenant_id, payload["invoice_id"], outlet.id, req, r.computed,
                                   payload, sold_to, r.lines_json, extra={"offline": offline})
        leaf_index = self.log.append(seal["hash"])
        when = issued if await self._day_open(outlet, issued) else merged_at
        row = await self.book.add(outlet, day_position(series_code, payload["counter"], leaf_index), when, r.computed,
                                  sealed=document, offline=True,
                                  buyer_subject=sold_to.subject_id if sold_to else None)
        # The day is decided here, by the state of the outlet's days at the merge: kept with the invoice, so
        # a rebuild of the figures (reports) gives it the same day (its counter does not say it).
        offline["business_day"] = row.business_day.isoformat()
        self.invoices.append(invoice_row(
            self.tenant_id, payload["invoice_id"], leaf_index, outlet.id, payload["series_id"], req, r.computed, issued,
            seal, signed or canonical_bytes(payload), document, sold_to, origin="offline", merged_at=merged_at))
        # Pending with the authority from the merge on: the sync agent sends it like any invoice.
        self.syncs.append(sync_row(self.tenant_id, payload["invoice_id"], outlet.id, merged_at))
        self.events.append(sealed_event(self.tenant_id, payload["invoice_id"], outlet.id, req.type, payload,
                                        offline=True))
        invoice_sealed(self.session, self.tenant_id, outlet.id, req.type)
        return document

    async def _day_open(self, outlet: Outlet, issued: datetime) -> bool:
        """The day rule (docs/offline.md): an offline invoice counts in its device time's business day while
        that day is open (not closed by a Z) and not behind the outlet's latest day (days never go back:
        figures.py); else in the merge's day. Passing the merge time to ``DayBook.add`` gives the latter."""
        latest: tuple[date, bool] | None = await self.book.latest_day(outlet)
        if latest is None:
            return True
        day, closed = latest
        local = local_date(issued, outlet.timezone)
        return local > day or (local == day and not closed)

    async def flush(self, now: datetime) -> None:
        """Write the batch's rows (the caller then writes the log and flushes)."""
        await self.vault.flush(now)
        await InvoiceRepository(self.session).insert_sealed(self.invoices, [])
        await SyncStateRepository(self.session).insert_pending(self.syncs)
        await enqueue_many(self.session, self.events)
        await self.book.write()
        self.invoices, self.syncs, self.events = [], [], []
