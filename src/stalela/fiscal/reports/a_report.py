"""A reports: every invoice and line of an outlet or a tenant over business days, with totals per day
and per tax group, for the accountant: JSON, CSV, XLSX, PDF.

Streamed: invoices are read a page at a time (keyset on the leaf index) and handed to a writer that
writes them out at once; only the per-day figures (one small object per business day) stay in
memory. JSON and CSV go to the client page by page; XLSX (xlsxwriter in constant_memory mode, rows
flushed to disk as written) and PDF are built in a temporary file and then streamed. The PDF keeps
its pages in memory until saved, so it is capped (``report_pdf_max_invoices``).

Days are business days as the Z reports count them (``core.reports.DayResolver``): the per-day
totals of an A report equal the figures of the Z reports of those days.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, AsyncIterator, BinaryIO, Callable, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from stalela.auth.principal import Principal
from stalela.config import Settings
from stalela.db.base import utcnow
from stalela.errors import Forbidden, NotFound, ValidationFailed
from stalela.fiscal.core.reports import DayResolver, Figures, ZBoundary, money
from stalela.fiscal.invoices.offline_merge import merged_day
from stalela.fiscal.invoices.buyers import reveal_buyers
from stalela.fiscal.invoices.figures import day_position
from stalela.fiscal.invoices.models import Invoice
from stalela.fiscal.jurisdictions import get_jurisdiction, labels
from stalela.fiscal.reports.formats import xlsx_number
from stalela.fiscal.reports.repository import ZReportRepository, count_invoices, invoice_pages, tenant_outlets
from stalela.kit.clock import rfc3339
from stalela.i18n import localizer, tenant_language
from stalela.kit.pdf import FONT, LIGHT_FILL, report_document
from stalela.tenancy.models import Outlet, Tenant
from stalela.tenancy.repository import OutletRepository, TenantRepository

FORMATS = ("json", "csv", "xlsx", "pdf")
MAX_DAYS = 366
Progress = Callable[[int], None]


@dataclass
class AReport:
    """What was asked and the context needed to answer it (checked before anything is streamed)."""

    tenant: Tenant
    outlets: dict[str, Outlet]
    outlet_id: str | None
    day_from: date
    day_to: date  # inclusive
    currency: str
    credit_types: frozenset[str]
    jurisdiction: str = "CD"
    generated_at: datetime = field(default_factory=utcnow)
    # To read sealed buyers back (seal v2).
    settings: Settings | None = None
    lang: str | None = None  # of the PDF; None: the tenant's (i18n.tenant_language)

    def header(self) -> dict[str, Any]:
        outlet = self.outlets[self.outlet_id] if self.outlet_id else None
        return {
            "object": "a_report",
            "tenant": {"id": self.tenant.id, "name": self.tenant.name, "tax_id": self.tenant.tax_id},
            "jurisdiction": self.jurisdiction,
            "outlet": {"id": outlet.id, "code": outlet.code, "name": outlet.name, "timezone": outlet.timezone}
            if outlet else None,
            "from": self.day_from.isoformat(),
            "to": self.day_to.isoformat(),
            "currency": self.currency,
            "generated_at": rfc3339(self.generated_at),
        }

    @property
    def issued_window(self) -> tuple[datetime, datetime]:
        """A UTC window certain to hold every invoice of the business days asked, in any timezone.

        An invoice's business day is its local date or the day after (sealed after an early close),
        and local dates are within a day of UTC dates: two days of margin each side, then filtered.
        """
        lo = datetime.combine(self.day_from - timedelta(days=2), datetime.min.time(), tzinfo=timezone.utc)
        hi = datetime.combine(self.day_to + timedelta(days=2), datetime.min.time(), tzinfo=timezone.utc)
        return lo, hi


async def prepare(
    session: AsyncSession, settings: Settings, principal: Principal, *, outlet_id: str | None, day_from: date,
    day_to: date, fmt: str,
) -> AReport:
    if fmt not in FORMATS:
        raise ValidationFailed(f"format must be one of {', '.join(FORMATS)}", code="invalid_format", field="format")
    if day_to < day_from:
        raise ValidationFailed("'to' must not be before 'from'", code="invalid_range", field="to")
    if (day_to - day_from).days >= MAX_DAYS:
        raise ValidationFailed(f"at most {MAX_DAYS} days per A report", code="range_too_long", field="to")
    if outlet_id is None and principal.restricted:
        if not principal.outlet_id:
            raise ValidationFailed("name the outlet: this credential may not report on the whole tenant",
                                   code="outlet_required", field="outlet_id")
        outlet_id = principal.outlet_id
    if outlet_id and not principal.can_use_outlet(outlet_id):
        raise Forbidden("this credential may not report on this outlet", code="api_key_outlet_restricted",
                        field="outlet_id")
    if outlet_id:
        outlet = await OutletRepository(session).get(outlet_id)
        if outlet is None:
            raise NotFound("no such outlet", code="outlet_not_found")
        outlets = {outlet.id: outlet}
    else:
        outlets = {o.id: o for o in await tenant_outlets(session)}
    tenant = await TenantRepository(session).get(principal.tenant_id)
    jurisdiction = get_jurisdiction(tenant.jurisdiction)
    report = AReport(tenant=tenant, outlets=outlets, outlet_id=outlet_id, day_from=day_from, day_to=day_to,
                     currency=jurisdiction.currency, credit_types=frozenset(jurisdiction.credit_note_types),
                     jurisdiction=jurisdiction.code, settings=settings)
    if fmt == "pdf":
        lo, hi = report.issued_window
        n = await count_invoices(session, outlet_id=outlet_id, issued_from=lo, issued_to=hi)
        if n > settings.report_pdf_max_invoices:
            raise ValidationFailed(
                f"about {n} invoices: more than a PDF holds ({settings.report_pdf_max_invoices}); "
                "ask for csv or xlsx, or a shorter range", code="a_report_too_large_for_pdf", field="format")
    return report


@dataclass
class Item:
    invoice: Invoice
    payload: dict[str, Any]
    document: dict[str, Any]
    business_day: date
    outlet: Outlet
    credit: bool
    position: int  # the invoice's place in its outlet's sequence (figures.day_position): what days cut


async def items(session: AsyncSession, report: AReport) -> AsyncIterator[list[Item]]:
    """The report's invoices, a page at a time, in sealing order, each with its business day."""
    zs = ZReportRepository(session)
    since = report.day_from - timedelta(days=1)
    boundaries: dict[str, list[ZBoundary]] = {}
    for outlet_id, n, day, counter_to in await zs.boundaries(report.outlet_id, since):
        boundaries.setdefault(outlet_id, []).append(ZBoundary(n, day, counter_to))
    last_days = await zs.last_days(report.outlet_id)
    resolvers = {o.id: DayResolver(o.timezone, boundaries.get(o.id, []), last_days.get(o.id))
                 for o in report.outlets.values()}
    series_code = get_jurisdiction(report.jurisdiction).series_code
    lo, hi = report.issued_window
    async for page in invoice_pages(session, outlet_id=report.outlet_id, issued_from=lo, issued_to=hi):
        out = []
        # As the API shows them: a restricted buyer stays hidden (auditors read one invoice at a time, logged).
        buyers = (await reveal_buyers(session, report.settings, report.tenant.id, page, purpose="tenant")
                  if report.settings is not None else {})
        for inv in page:
            resolver = resolvers.get(inv.outlet_id)
            if resolver is None:
                continue
            # The place Z reports cut days by: the counter where an outlet has one series (the DRC),
            # the log position where it numbers each receipt type apart (Argentina).
            position = day_position(series_code(inv.type), inv.counter, inv.leaf_index)
            document = json.loads(inv.document)
            # A merged offline invoice counts in the day its merge gave it (its counter is a block's, older
            # than the online numbers around it), as its Z and a rebuild count it.
            day = merged_day(document) or resolver.day_of(position, inv.issued_at)
            if report.day_from <= day <= report.day_to:
                payload = json.loads(inv.payload)
                out.append(Item(inv, payload, {**document, **buyers.get(inv.id, {})}, day,
                                report.outlets[inv.outlet_id],
                                payload["type"] in report.credit_types, position))
        yield out


@dataclass
class Summary:
    days: dict[date, Figures] = field(default_factory=dict)
    total: Figures = field(default_factory=Figures)

    def add(self, item: Item) -> None:
        for figures in (self.days.setdefault(item.business_day, Figures()), self.total):
            figures.add_invoice(type=item.payload["type"], credit=item.credit, totals=item.payload["totals"],
                                payments=item.document.get("payments"), counter=item.position,
                                issued_at=item.payload["issued_at"], offline="offline" in item.payload)


class Writer(Protocol):
    def begin(self, header: dict[str, Any]) -> None: ...
    def add(self, item: Item) -> None: ...
    def end(self, summary: Summary) -> None: ...


async def run(session: AsyncSession, report: AReport, writer: Writer,
              progress: Progress | None = None) -> AsyncIterator[int]:
    """Feed the writer; yields the number of invoices written after each page (a chance to flush)."""
    summary = Summary()
    writer.begin(report.header())
    yield 0
    async for page in items(session, report):
        for item in page:
            writer.add(item)
            summary.add(item)
        if progress:
            progress(len(page))
        yield len(page)
    writer.end(summary)
    yield 0


async def write_file(session: AsyncSession, report: AReport, fmt: str, path: str,
                     progress: Progress | None = None) -> int:
    """The whole report into ``path`` (CLI, HTTP for XLSX/PDF); returns the number of invoices."""
    count = 0
    if fmt in ("json", "csv"):
        with open(path, "wb") as fh:
            async for n in run(session, report, make_writer(fmt, fh), progress):
                count += n
    else:
        writer = make_writer(fmt, path, lang=report.lang or tenant_language(report.tenant.locale, report.tenant.jurisdiction))
        async for n in run(session, report, writer, progress):
            count += n
    return count


def make_writer(fmt: str, target: BinaryIO | str, lang: str | None = None) -> Writer:
    if fmt == "pdf":
        return PdfWriter(str(target), lang)
    return {"json": JsonWriter, "csv": CsvWriter, "xlsx": XlsxWriter}[fmt](target)


def invoice_view(item: Item) -> dict[str, Any]:
    p, d = item.payload, item.document
    return {
        "invoice_id": item.invoice.id, "fiscal_number": p["fiscal_number"], "outlet_id": p["outlet_id"],
        "outlet_code": item.outlet.code, "counter": p["counter"], "type": p["type"],
        "business_day": item.business_day.isoformat(), "issued_at": p["issued_at"], "reference": d.get("reference"),
        "buyer": d.get("buyer"), "nature": p["nature"], "original": p["original"], "price_mode": p["price_mode"],
        "totals": p["totals"], "payments": d.get("payments"), "lines": d["lines"], "seal_hash": item.invoice.seal_hash,
        "key_id": item.invoice.key_id,
    }


def _days_json(summary: Summary) -> list[dict[str, Any]]:
    return [{"business_day": day.isoformat(), **fig.as_json()} for day, fig in sorted(summary.days.items())]


# ----------------------------------------------------------------------------------------- JSON


class JsonWriter:
    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.first = True

    def begin(self, header: dict[str, Any]) -> None:
        self.out.write(json.dumps(header, ensure_ascii=False)[:-1].encode() + b',"invoices":[\n')

    def add(self, item: Item) -> None:
        self.out.write((b"" if self.first else b",\n") + json.dumps(invoice_view(item), ensure_ascii=False).encode())
        self.first = False

    def end(self, summary: Summary) -> None:
        tail = {"days": _days_json(summary), "totals": summary.total.as_json()}
        self.out.write(b'\n],' + json.dumps(tail, ensure_ascii=False)[1:].encode() + b"\n")


# ------------------------------------------------------------------------------------------ CSV

CSV_COLUMNS = ["record", "business_day", "outlet", "fiscal_number", "counter", "type", "issued_at", "buyer_tax_id",
               "buyer_name", "nature", "original", "line", "description", "item_type", "tax_group", "rate",
               "quantity", "unit_price", "amount", "base", "vat", "total", "invoices"]


class _Text:
    def __init__(self, out: BinaryIO) -> None:
        self.out = out

    def write(self, text: str) -> None:
        self.out.write(text.encode())


class CsvWriter:
    """One table, a ``record`` column saying what each row is: invoice, line, then day_group, day,
    group and total rows (credit notes subtracted in those)."""

    def __init__(self, out: BinaryIO) -> None:
        self.csv = csv.writer(_Text(out), lineterminator="\n")

    def row(self, **values: Any) -> None:
        self.csv.writerow(["" if values.get(c) is None else values.get(c) for c in CSV_COLUMNS])

    def begin(self, header: dict[str, Any]) -> None:
        self.csv.writerow(CSV_COLUMNS)

    def add(self, item: Item) -> None:
        p, d = item.payload, item.document
        common = {"business_day": item.business_day.isoformat(), "outlet": item.outlet.code,
                  "fiscal_number": p["fiscal_number"], "counter": p["counter"], "type": p["type"]}
        buyer = d.get("buyer") or {}
        base = sum((Decimal(g["base"]) for g in p["totals"]["groups"]), Decimal(0))
        vat = sum((Decimal(g["vat"]) for g in p["totals"]["groups"]), Decimal(0))
        self.row(record="invoice", **common, issued_at=p["issued_at"], buyer_tax_id=labels.buyer_id(buyer),
                 buyer_name=buyer.get("name"), nature=p["nature"], original=p["original"], base=f"{base:.2f}",
                 vat=f"{vat:.2f}", total=p["totals"]["total"])
        for ln in d["lines"]:
            self.row(record="line", **common, line=ln["index"], description=ln["description"],
                     item_type=ln.get("item_type"), tax_group=labels.line_group(ln), quantity=ln["quantity"],
                     unit_price=ln["unit_price"], amount=ln["amount"])

    def end(self, summary: Summary) -> None:
        for day, fig in sorted(summary.days.items()):
            net = fig.net().as_json()
            for g in net["groups"]:
                self.row(record="day_group", business_day=day.isoformat(), tax_group=g["group"], rate=g["rate"],
                         amount=g["amount"], base=g["base"], vat=g["vat"])
            self.row(record="day", business_day=day.isoformat(), vat=money(fig.net().vat()), total=net["total"],
                     invoices=fig.invoices)
        net = summary.total.net().as_json()
        for g in net["groups"]:
            self.row(record="group", tax_group=g["group"], rate=g["rate"], amount=g["amount"], base=g["base"],
                     vat=g["vat"])
        self.row(record="total", vat=money(summary.total.net().vat()), total=net["total"],
                 invoices=summary.total.invoices)


# ----------------------------------------------------------------------------------------- XLSX


class XlsxWriter:
    """Sheets Invoices, Lines, Days, Totals; constant_memory: each row goes to disk when the next starts."""

    def __init__(self, path: str) -> None:
        import xlsxwriter  # heavy third-party (see kit.pdf.report_document): loaded by the first XLSX export

        self.wb = xlsxwriter.Workbook(path, {"constant_memory": True})
        self.bold = self.wb.add_format({"bold": True})
        self.money = self.wb.add_format({"num_format": "#,##0.00"})
        self.sheets = {name: self.wb.add_worksheet(name) for name in ("Invoices", "Lines", "Days", "Totals")}
        self.rows = dict.fromkeys(self.sheets, 0)

    def put(self, sheet: str, values: list[Any], *, header: bool = False) -> None:
        ws, r = self.sheets[sheet], self.rows[sheet]
        for c, v in enumerate(values):
            if v is None:
                continue
            if header:
                ws.write_string(r, c, str(v), self.bold)
            elif isinstance(v, float):
                ws.write_number(r, c, v, self.money)
            elif isinstance(v, int):
                ws.write_number(r, c, v)
            else:
                ws.write_string(r, c, str(v))
        self.rows[sheet] = r + 1

    def begin(self, header: dict[str, Any]) -> None:
        self.put("Invoices", ["business_day", "outlet", "fiscal_number", "counter", "type", "issued_at",
                              "buyer_tax_id", "buyer_name", "nature", "original", "total", "vat_settled_by_credit",
                              "payable", "seal_hash"], header=True)
        self.put("Lines", ["fiscal_number", "line", "description", "item_type", "tax_group", "quantity",
                           "unit_price", "amount"], header=True)
        self.put("Days", ["business_day", "group", "rate", "amount", "base", "vat", "total", "invoices"], header=True)
        self.put("Totals", ["group", "rate", "amount", "base", "vat", "total", "invoices"], header=True)
        self.header = header

    def add(self, item: Item) -> None:
        p, d = item.payload, item.document
        buyer = d.get("buyer") or {}
        t = p["totals"]
        self.put("Invoices", [item.business_day.isoformat(), item.outlet.code, p["fiscal_number"], p["counter"],
                              p["type"], p["issued_at"], labels.buyer_id(buyer), buyer.get("name"), p["nature"],
                              p["original"], xlsx_number(t["total"]), xlsx_number(t["vat_settled_by_credit"]),
                              xlsx_number(t["payable"]), item.invoice.seal_hash])
        for ln in d["lines"]:
            self.put("Lines", [p["fiscal_number"], ln["index"], ln["description"], ln.get("item_type"),
                               labels.line_group(ln),
                               ln["quantity"], xlsx_number(ln["unit_price"]), xlsx_number(ln["amount"])])

    def end(self, summary: Summary) -> None:
        for day, fig in sorted(summary.days.items()):
            net = fig.net().as_json()
            for g in net["groups"]:
                self.put("Days", [day.isoformat(), g["group"], g["rate"], xlsx_number(g["amount"]),
                                  xlsx_number(g["base"]), xlsx_number(g["vat"])])
            self.put("Days", [day.isoformat(), "total", None, None, None, None, xlsx_number(net["total"]),
                              fig.invoices])
        net = summary.total.net().as_json()
        for g in net["groups"]:
            self.put("Totals", [g["group"], g["rate"], xlsx_number(g["amount"]), xlsx_number(g["base"]),
                                xlsx_number(g["vat"])])
        self.put("Totals", ["total", None, None, None, None, xlsx_number(net["total"]), summary.total.invoices])
        self.wb.close()


# ------------------------------------------------------------------------------------------ PDF


class PdfWriter:
    """Landscape pages: each invoice with its lines, then totals per day and per group."""

    def __init__(self, path: str, lang: str | None = None) -> None:
        self.path = path
        self.jurisdiction: str | None = None
        self.l10n = localizer(lang)
        self.currency: str | None = None
        self.pdf = report_document("", l10n=self.l10n, orientation="L", format="A4")
        self.pdf.set_auto_page_break(True, margin=14)
        _ = self.l10n.gettext
        self.cols = ((24, _("Day"), "L"), (42, _("Fiscal number"), "L"), (30, _("Type"), "L"),
                     (40, _("Issued"), "L"), (60, _("Buyer"), "L"), (28, _("Total"), "R"),
                     (26, _("VAT settled"), "R"), (26, _("Payable"), "R"))

    def money(self, value: Any, sign: int = 1) -> str:
        amount = Decimal(str(value)) if value is not None else None
        return self.l10n.money(sign * amount if amount else amount)

    def begin(self, header: dict[str, Any]) -> None:
        pdf, l10n, _ = self.pdf, self.l10n, self.l10n.gettext
        outlet = header["outlet"]
        scope = (_("outlet %(name)s (%(code)s)", name=outlet["name"], code=outlet["code"]) if outlet
                 else _("all outlets"))
        period = _("business days %(start)s to %(end)s", start=l10n.date(header["from"]), end=l10n.date(header["to"]))
        title = _("A report")
        pdf.footer_text = f"{title} · {header['tenant']['name']} · {scope} · {period}"
        pdf.add_page()
        pdf.set_font(FONT, "B", 14)
        self.jurisdiction, self.currency = header.get("jurisdiction"), header["currency"]
        pdf.cell(0, 8, f"{title} · {header['tenant']['name']} "
                       f"({labels.tax_id_label(self.jurisdiction)} {header['tenant']['tax_id']})",
                 new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(FONT, "", 9)
        pdf.cell(0, 5, _("%(scope)s; %(period)s; amounts in %(currency)s; generated %(when)s", scope=scope,
                         period=period, currency=header["currency"],
                         when=l10n.datetime(header["generated_at"], outlet["timezone"] if outlet else None)),
                 new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
        self._header_row()

    def _header_row(self) -> None:
        pdf = self.pdf
        pdf.set_font(FONT, "B", 7.5)
        pdf.set_fill_color(*LIGHT_FILL)
        for w, label, align in self.cols:
            pdf.cell(w, 5, label, align=align, fill=True)
        pdf.ln(5)

    def add(self, item: Item) -> None:
        pdf, l10n = self.pdf, self.l10n
        p, d = item.payload, item.document
        buyer = d.get("buyer") or {}
        who = " ".join(x for x in (buyer.get("name"), labels.buyer_id(buyer)) if x) or "—"
        sign = -1 if item.credit else 1  # a credit note reads negative, as it counts
        values = (l10n.date(item.business_day, "short"), p["fiscal_number"],
                  labels.invoice_type_text(l10n, self.jurisdiction, p["type"]),
                  l10n.datetime(p["issued_at"], item.outlet.timezone, seconds=True), who,
                  self.money(p["totals"]["total"], sign), self.money(p["totals"]["vat_settled_by_credit"], sign),
                  self.money(p["totals"]["payable"], sign))
        if pdf.will_page_break(5 + 4 * len(d["lines"][:1])):
            pdf.add_page()
            self._header_row()
        pdf.set_font(FONT, "", 7.5)
        for (w, _label, align), v in zip(self.cols, values):
            pdf.cell(w, 5, str(v)[:48], align=align)
        pdf.ln(5)
        pdf.set_font(FONT, "", 6.5)
        pdf.set_text_color(80)
        for ln in d["lines"]:
            pdf.cell(24, 4, "")
            pdf.cell(106, 4, f"{ln['index'] + 1}. {ln['description']}"[:80])
            group = ln.get("tax_group") or ln.get("vat_rate") or ""
            pdf.cell(68, 4, labels.tax_group_text(l10n, self.jurisdiction, group)[:48])
            pdf.cell(50, 4, f"{l10n.number(ln['quantity'])} × {self.money(ln['unit_price'])}", align="R")
            pdf.cell(28, 4, self.money(ln["amount"], sign), align="R")
            pdf.ln(4)
        pdf.set_text_color(0)

    def end(self, summary: Summary) -> None:
        pdf, l10n, _ = self.pdf, self.l10n, self.l10n.gettext
        pdf.add_page()
        pdf.set_font(FONT, "B", 11)
        pdf.cell(0, 7, _("Totals per business day and tax group (credit notes subtracted)"), new_x="LMARGIN",
                 new_y="NEXT")
        cols = ((28, _("Day"), "L"), (74, _("Tax group"), "L"), (30, _("Amount"), "R"), (30, _("Base"), "R"),
                (30, _("VAT"), "R"), (34, _("Total"), "R"), (20, _("Invoices"), "R"))

        def line(values: tuple, bold: bool = False) -> None:
            pdf.set_font(FONT, "B" if bold else "", 7.5)
            for (w, _label, align), v in zip(cols, values):
                pdf.cell(w, 5, "" if v is None else str(v), align=align)
            pdf.ln(5)

        def group(g: dict[str, Any]) -> str:
            return labels.tax_group_text(l10n, self.jurisdiction, g["group"], g["rate"])

        line(tuple(c[1] for c in cols), bold=True)
        for day, fig in sorted(summary.days.items()):
            net = fig.net().as_json()
            shown = l10n.date(day, "short")
            for g in net["groups"]:
                line((shown, group(g), self.money(g["amount"]), self.money(g["base"]), self.money(g["vat"]), None, None))
            line((shown, _("all groups"), None, None, None, self.money(net["total"]), fig.invoices), bold=True)
        pdf.ln(3)
        net = summary.total.net().as_json()
        for g in net["groups"]:
            line((_("period"), group(g), self.money(g["amount"]), self.money(g["base"]), self.money(g["vat"]), None,
                  None))
        line((_("period"), _("all groups"), None, None, None, self.money(net["total"]), summary.total.invoices),
             bold=True)
        if self.jurisdiction != "AR":  # the DRC's settlement; an Argentine receipt has none
            line(("", _("VAT settled by credit"), None, None, None, self.money(net["vat_settled_by_credit"]), None))
            line(("", _("Payable"), None, None, None, self.money(net["payable"]), None))
        pdf.output(self.path)


def chunks(path: str, size: int = 1 << 16):  # noqa: ANN201
    with open(path, "rb") as fh:
        while block := fh.read(size):
            yield block


class Chunks(io.RawIOBase):
    """A write-only buffer the HTTP stream drains after every page."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out
