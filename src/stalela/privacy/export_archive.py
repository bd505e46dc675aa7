"""The archive's content: a tenant's (or a subject's) data read page by page into a BagIt bag.

Every entity becomes ``data/<entity>.ndjson`` (one JSON record a line: the complete form) and
``data/<entity>.csv`` (the same records flat, nested values as JSON text), with its JSON Schema in
``data/schemas/<entity>.schema.json``; each invoice also gets its PDF, ``data/pdf/<invoice_id>.pdf``.
The database is read in pages (keyset pagination) and each page is written out before the next is read,
so memory holds one page whatever the size of the tenant. Rendering PDFs and writing files run in a
worker thread: an export inside ``stalela serve`` never stalls the API's event loop.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

import anyio
from sqlalchemy.ext.asyncio import AsyncSession

from stalela.audit.service import render as render_audit
from stalela.billing import bill_service, usage_service
from stalela.config import Settings
from stalela.fiscal.invoices import pdf
from stalela.fiscal.invoices import service as invoices
from stalela.fiscal.reports.service import render_z
from stalela.kit.clock import rfc3339
from stalela.privacy.export_bag import Bag
from stalela.privacy.export_repository import SnapshotRepository
from stalela.privacy.export_schemas import ENTITIES, SUBJECT_ENTITIES, json_schema

PDF_DIR = "data/pdf"


@dataclass(frozen=True)
class Snapshot:
    """What one export holds: the tenant's data as of the request (``export_models.PrivacyExport``)."""

    tenant_id: str
    scope: str
    leaf_bound: int
    audit_seq_bound: int
    as_of: datetime
    # Subject scope: the subject's invoices and their e-mail as a user (None: the whole tenant).
    invoice_ids: list[str] | None = None
    email: str | None = None
    # Each invoice's PDF beside its sealed JSON (a PDF is re-derivable from it, and costs ~10 ms of CPU
    # each: a tenant of a million invoices may leave them out).
    pdfs: bool = True


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return str(value)


class EntityWriter:
    """``data/<entity>.ndjson`` and ``.csv`` of one entity, written record by record."""

    def __init__(self, bag: Bag, entity: str) -> None:
        self.bag, self.entity, self.model = bag, entity, ENTITIES[entity]
        self.columns = list(self.model.model_fields)
        self.extra = self.model.model_config.get("extra") == "allow"
        self.ndjson = bag.open(f"data/{entity}.ndjson")
        self.csv = bag.open(f"data/{entity}.csv")
        self.count = 0
        self._row(self.columns + (["extra"] if self.extra else []))

    def _row(self, cells: list[str]) -> None:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\r\n").writerow(cells)  # RFC 4180
        self.csv.write(buffer.getvalue().encode())

    def write(self, record: dict[str, Any]) -> None:
        # Checked against the entity's schema, so the archive never holds a record its schema refuses.
        self.model.model_validate(record)
        self.ndjson.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode() + b"\n")
        cells = [_cell(record.get(c)) for c in self.columns]
        if self.extra:
            rest = {k: v for k, v in record.items() if k not in self.model.model_fields}
            cells.append(_cell(rest) if rest else "")
        self._row(cells)
        self.count += 1

    def close(self) -> None:
        self.bag.close(f"data/{self.entity}.ndjson")
        self.bag.close(f"data/{self.entity}.csv")


def _when(moment: datetime | None) -> str | None:
    return rfc3339(moment) if moment is not None else None


def _tenant(t: Any) -> dict[str, Any]:
    return {"id": t.id, "name": t.name, "tax_id": t.tax_id, "jurisdiction": t.jurisdiction, "status": t.status,
            "vat_condition": t.vat_condition, "created_at": _when(t.created_at), "updated_at": _when(t.updated_at)}


def _outlet(o: Any) -> dict[str, Any]:
    return {"id": o.id, "code": o.code, "name": o.name, "address": o.address, "timezone": o.timezone,
            "status": o.status, "pos_number": o.pos_number, "first_business_day": o.first_business_day.isoformat(),
            "created_at": _when(o.created_at), "updated_at": _when(o.updated_at)}


def _user(u: Any) -> dict[str, Any]:
    return {"id": u.id, "email": u.email, "name": u.name, "role": u.role, "status": u.status,
            "outlet_ids": json.loads(u.outlet_ids or "[]"), "created_at": _when(u.created_at),
            "updated_at": _when(u.updated_at)}


def _api_key(k: Any) -> dict[str, Any]:
    return {"id": k.id, "name": k.name, "prefix": k.prefix, "scopes": json.loads(k.scopes) if k.scopes else None,
            "outlet_id": k.outlet_id, "created_at": _when(k.created_at), "revoked_at": _when(k.revoked_at),
            "last_used_at": _when(k.last_used_at)}


def _webhook_endpoint(e: Any) -> dict[str, Any]:
    return {"id": e.id, "url": e.url, "description": e.description,
            "event_types": json.loads(e.event_types) if e.event_types is not None else None, "enabled": e.enabled,
            "disabled_reason": e.disabled_reason, "disabled_at": _when(e.disabled_at),
            "created_at": _when(e.created_at), "updated_at": _when(e.updated_at), "deleted_at": _when(e.deleted_at)}


def _bill(b: Any) -> dict[str, Any]:
    """The bill with its lines whole: each carries what recomputes it (days, event count, SHA-256 of ids)."""
    shown = bill_service.detail(b)
    return {**{k: shown[k] for k in ("id", "period", "status", "currency", "total", "credit_notes", "invoice_id",
                                     "invoice_currency", "invoice_total", "exchange_rate")},
            "lines": bill_service.bill_usage(b)["data"], "created_at": _when(b.created_at),
            "sealed_at": _when(b.sealed_at)}


async def _write_usage(repo: SnapshotRepository, snap: Snapshot, writer: EntityWriter, page: int) -> None:
    """Events received by the request, each with its void if that came by the request too."""
    async for rows in _pages(lambda a: repo.usage_events(a, page, received_up_to=snap.as_of)):
        voided = await repo.voided_at([e.event_id for e in rows], up_to=snap.as_of)
        records = [{**usage_service.render(e), "occurred_at": _when(e.occurred_at), "received_at": _when(e.received_at),
                    "voided_at": _when(voided.get(e.event_id))} for e in rows]
        await anyio.to_thread.run_sync(lambda: [writer.write(r) for r in records])


async def _pages(fetch: Callable[[str | None], Any]) -> Any:
    """Every row of a keyset-paged query by id, one page at a time."""
    after = None
    while True:
        rows = await fetch(after)
        if not rows:
            return
        yield rows
        after = rows[-1].id


async def _write_rows(writer: EntityWriter, fetch: Callable[[str | None], Any], render: Callable[[Any], dict]) -> None:
    async for rows in _pages(fetch):
        records = [render(r) for r in rows]
        await anyio.to_thread.run_sync(lambda: [writer.write(r) for r in records])


async def write_payload(session: AsyncSession, settings: Settings, snap: Snapshot, bag: Bag) -> dict[str, int]:
    """Write every entity of the snapshot into ``bag``; returns the number of records of each (and PDFs)."""
    repo, page = SnapshotRepository(session), settings.export_page_size
    tenant = await repo.tenant(snap.tenant_id)
    entities = SUBJECT_ENTITIES if snap.scope == "subject" else tuple(ENTITIES)
    writers = {e: EntityWriter(bag, e) for e in entities}
    try:
        await anyio.to_thread.run_sync(writers["tenant"].write, _tenant(tenant))
        if "outlets" in writers:
            await _write_rows(writers["outlets"], lambda a: repo.outlets(a, page), _outlet)
        if snap.scope == "tenant" or snap.email:  # a subject known by tax id alone is no user
            await _write_rows(writers["users"], lambda a: repo.users(a, page, email=snap.email), _user)
        if "api_keys" in writers:
            await _write_rows(writers["api_keys"], lambda a: repo.api_keys(a, page), _api_key)
        if "webhook_endpoints" in writers:
            await _write_rows(writers["webhook_endpoints"], lambda a: repo.webhook_endpoints(a, page),
                              _webhook_endpoint)
        await _write_invoices(repo, settings, snap, tenant, bag, writers["invoices"])
        if "z_reports" in writers:
            await _write_rows(writers["z_reports"], lambda a: repo.z_reports(a, page, created_up_to=snap.as_of),
                              lambda z: render_z(settings, z))
        if "usage_events" in writers:
            await _write_usage(repo, snap, writers["usage_events"], page)
        if "bills" in writers:
            await _write_rows(writers["bills"], lambda a: repo.bills(a, page), _bill)
        user_ids = await _subject_user_ids(repo, snap, page)
        await _write_audit(repo, snap, writers["audit_events"], user_ids, page)
    finally:
        for writer in writers.values():
            writer.close()
    for entity in entities:
        bag.add(f"data/schemas/{entity}.schema.json",
                json.dumps(json_schema(entity), indent=2, sort_keys=True, ensure_ascii=False).encode() + b"\n")
    counts = {e: w.count for e, w in writers.items()}
    counts["pdf"] = bag.sequence_count(PDF_DIR)
    return counts


async def _write_invoices(repo: SnapshotRepository, settings: Settings, snap: Snapshot, tenant: Any, bag: Bag,
                          writer: EntityWriter) -> None:
    seller = {"name": tenant.name, "tax_id": tenant.tax_id}
    outlets: dict[str, dict[str, str]] = {}
    page = settings.export_page_size

    async def fetch(after: str | None) -> list:
        if snap.invoice_ids is None:
            return await repo.invoices(after, page, leaf_bound=snap.leaf_bound)
        # A subject's invoices by id, in slices (an IN list of 10,000 ids would pass SQLite's limits).
        wanted = [i for i in sorted(snap.invoice_ids) if after is None or i > after]
        for start in range(0, len(wanted), page):
            rows = await repo.invoices(None, page, leaf_bound=snap.leaf_bound, ids=wanted[start:start + page])
            if rows:
                return rows
        return []

    async for rows in _pages(fetch):
        missing = {r.outlet_id for r in rows} - set(outlets)
        if missing:
            async for found in _pages(lambda a: repo.outlets(a, page)):
                outlets.update({o.id: {"code": o.code, "name": o.name} for o in found})
        syncs = await invoices.sync_views(repo.session, [r.id for r in rows])
        # As GET /v1/invoices/{id} answers them: the buyer read back from its subject key (hidden if restricted).
        shown = await invoices.render_many(repo.session, settings, rows)
        records = [{**body, "sync": syncs[r.id]} for r, body in zip(rows, shown)]

        def write_page() -> None:
            for record in records:
                writer.write(record)
                if not snap.pdfs:
                    continue
                document = {k: v for k, v in record.items() if k != "sync"}
                bag.add_to_sequence(PDF_DIR, f"{record['id']}.pdf",
                                    pdf.invoice_pdf(document, seller, outlets[record["outlet_id"]], record["sync"]))

        await anyio.to_thread.run_sync(write_page)


async def _subject_user_ids(repo: SnapshotRepository, snap: Snapshot, page: int) -> set[str] | None:
    """The subject's user ids (a subject may also be a user of the tenant); None for a tenant export."""
    if snap.scope != "subject":
        return None
    if not snap.email:
        return set()
    return {u.id async for rows in _pages(lambda a: repo.users(a, page, email=snap.email)) for u in rows}


async def _write_audit(repo: SnapshotRepository, snap: Snapshot, writer: EntityWriter, user_ids: set[str] | None,
                       page: int) -> None:
    """The tenant's log below the snapshot's bound; for a subject, the entries about them: acting as a
    user, or naming one of their invoices or their user as the target."""
    about = None if user_ids is None else set(snap.invoice_ids or ()) | user_ids
    actors = None if user_ids is None else {f"user:{u}" for u in user_ids}
    after = 0
    while True:
        rows = await repo.audit_entries(after, page, seq_bound=snap.audit_seq_bound)
        if not rows:
            return
        chosen = [render_audit(e) for e in rows
                  if about is None or e.target in about or e.actor in actors]
        await anyio.to_thread.run_sync(lambda: [writer.write(r) for r in chosen])
        after = rows[-1].seq
