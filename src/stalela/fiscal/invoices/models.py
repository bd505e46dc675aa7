from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, LargeBinary, ForeignKeyConstraint, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from stalela.db.base import Base, UTCDateTime, utcnow
from stalela.tenancy.context import TenantOwned


class Series(TenantOwned, Base):
    """A numbering series: the gap-free counter and the head of the hash chain.

    One series per outlet in the DRC ("main"), one per (outlet, receipt type) in Argentina; keyed separately so an offline device can later get its own series
    (or a block of numbers) without a redesign. The only fiscal row that is updated: its counter.
    """

    __tablename__ = "series"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "outlet_id"], ["outlets.tenant_id", "outlets.id"]),
        Index("uq_series_tenant_id_outlet_id_code", "tenant_id", "outlet_id", "code", unique=True),
    )

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    outlet_id: Mapped[str] = mapped_column(String(40))
    code: Mapped[str] = mapped_column(String(32), default="main")
    counter: Mapped[int] = mapped_column(BigInteger, default=0)
    # The first number handed out: 1, unless the series was aligned with the authority's last number
    # before its first seal (an Argentine point of sale that already issued receipts elsewhere).
    first_counter: Mapped[int] = mapped_column(BigInteger, default=1, server_default="1")
    # 1, or k once an Argentine series was realigned k-1 times with ARCA (SeriesRepository.supersede).
    generation: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    last_hash: Mapped[str] = mapped_column(String(64), default="0" * 64)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Invoice(TenantOwned, Base):
    """A sealed invoice. Append-only: never updated, never deleted (the app role has no grant to)."""

    __tablename__ = "invoices"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "outlet_id"], ["outlets.tenant_id", "outlets.id"]),
        Index("uq_invoices_tenant_id_series_id_counter", "tenant_id", "series_id", "counter", unique=True),
        Index("uq_invoices_tenant_id_fiscal_number", "tenant_id", "fiscal_number", unique=True),
        Index("uq_invoices_tenant_id_outlet_id_reference", "tenant_id", "outlet_id", "reference", unique=True),
        Index("ix_invoices_tenant_id_original", "tenant_id", "original"),
        Index("uq_invoices_tenant_id_leaf_index", "tenant_id", "leaf_index", unique=True),
        Index("ix_invoices_tenant_id_issued_at", "tenant_id", "issued_at"),
        # The public verification page finds an invoice by id alone.
        Index("uq_invoices_id", "id", unique=True),
        # Erasure and portability find a data subject's invoices.
        Index("ix_invoices_tenant_id_buyer_subject", "tenant_id", "buyer_subject"),
    )

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    outlet_id: Mapped[str] = mapped_column(String(40))
    series_id: Mapped[str] = mapped_column(String(40))
    counter: Mapped[int] = mapped_column(BigInteger)
    fiscal_number: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(4))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reference: Mapped[str | None] = mapped_column(String(100), nullable=True)
    original: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Exact integer minor units so credit-note limits can be summed in SQL on both databases.
    total_cents: Mapped[int] = mapped_column(BigInteger)
    # Position of the seal hash in the tenant's Merkle log (sealing order).
    leaf_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # The cloud's signing key, or for an offline invoice the device key's RFC 7638 thumbprint (43 characters).
    key_id: Mapped[str] = mapped_column(String(64))
    seal_hash: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))
    payload: Mapped[str] = mapped_column(Text)  # the signed payload, canonical JSON (RFC 8785)
    document: Mapped[str] = mapped_column(Text)  # the sealed invoice as answered, minus the seal (and, v2, its buyer)
    # Seal v2: a buyer with personal data is not in ``document`` but here, AES-GCM under its subject's
    # data key (stalela.fiscal.subjects); shredding the key erases it, the row never changes.
    buyer_subject: Mapped[str | None] = mapped_column(String(40), nullable=True)
    buyer_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # "online" (sealed here) or "offline" (sealed by a device under a delegated credential, merged at
    # merged_at; issued_at is then the device's time). docs/offline.md.
    origin: Mapped[str] = mapped_column(String(8), default="online", server_default="online")
    merged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class NumberBlock(TenantOwned, Base):
    """Numbers ``first..last`` of a series handed to an offline device (docs/offline.md).

    Carved under the series lock like any online number; the sealed ``number_block`` ledger event is the
    record, this row is where the block stands: ``state`` is ``core.offline.BlockChain`` as JSON, updated
    under the block's lock as invoices merge and numbers are voided (like a series' counter)."""

    __tablename__ = "number_blocks"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "outlet_id"], ["outlets.tenant_id", "outlets.id"]),
        Index("uq_number_blocks_tenant_id_series_id_first", "tenant_id", "series_id", "first", unique=True),
        Index("ix_number_blocks_status_expires_at", "status", "expires_at"),
    )

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    outlet_id: Mapped[str] = mapped_column(String(40))
    series_id: Mapped[str] = mapped_column(String(40))
    device_id: Mapped[str] = mapped_column(String(40))
    credential_jti: Mapped[str] = mapped_column(String(40))
    first: Mapped[int] = mapped_column(BigInteger)
    last: Mapped[int] = mapped_column(BigInteger)
    anchor_hash: Mapped[str] = mapped_column(String(64))  # the number_block record's seal hash
    allocated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())  # the credential's exp
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | closed (every number accounted for)
    state: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class IdempotencyRecord(TenantOwned, Base):
    __tablename__ = "idempotency_keys"

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


# Where an invoice stands with the tax authority. The sealing pipeline writes the first state and the
# invoice API and the verification page show it; the sync agent (stalela.authority, above fiscal)
# moves it on and keeps the acknowledgement. Both live here so that fiscal never imports the agent.
class InvoiceSync(TenantOwned, Base):
    """Where an invoice stands with the authority. The sealed invoice itself is never touched."""

    __tablename__ = "invoice_sync"
    __table_args__ = (
        Index("ix_invoice_sync_tenant_id_outlet_id_status", "tenant_id", "outlet_id", "status"),
        # Checked requests still pending at the device (migration 0011): the agent settles them before creating.
        Index("ix_invoice_sync_checked", "tenant_id", "outlet_id",
              postgresql_where=text("uid IS NOT NULL AND status = 'pending'"),
              sqlite_where=text("uid IS NOT NULL AND status = 'pending'")),
    )

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    invoice_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    outlet_id: Mapped[str] = mapped_column(String(40))
    # pending | acknowledged | failed (the DGI refused it, or its totals differ) | rejected (ARCA's Resultado R)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    uid: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the DGI's pending request, if any
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # What the authority said beyond a code, JSON (ARCA: CAE due date, Resultado, observations, QR).
    details: Mapped[str | None] = mapped_column(Text, nullable=True)
    sealed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Two deliveries of one invoice (invoice.sealed and a resync) must not talk to the authority at
    # once: one would cancel the request the other is confirming. A short lease decides.
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AuthorityAck(TenantOwned, Base):
    """The DGI's acknowledgement of a confirmed invoice. Append-only."""

    __tablename__ = "authority_acks"

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    invoice_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    nim: Mapped[str] = mapped_column(String(64))
    uid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    code: Mapped[str] = mapped_column(String(64))  # codeDEFDGI
    counters: Mapped[str | None] = mapped_column(String(64), nullable=True)
    authority_time: Mapped[str | None] = mapped_column(String(64), nullable=True)
    qr_code: Mapped[str | None] = mapped_column(Text, nullable=True)
    raw: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# The business day's running figures are a by-product of sealing (see figures.py), read by the
# reports above: they live here so that sealing never imports the reports package.
class DayFigures(TenantOwned, Base):
    """Running figures of one outlet's business day, updated in the sealing transaction.

    Not a fiscal record: a cache of sealed facts (the invoices), updated in place under the outlet's
    series lock so reports never scan a day's invoices. It can be recomputed from the invoices and
    the Z reports at any time (``service.rebuild_figures``, ``stalela report rebuild``). Once a Z
    closes the day, ``z_report_id`` is set; the Z's own sealed copy of the figures is the record.
    """

    __tablename__ = "report_day_figures"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "outlet_id"], ["outlets.tenant_id", "outlets.id"]),
        # The scheduler's question: which days are still open?
        Index("ix_report_day_figures_z_report_id_business_day", "z_report_id", "business_day"),
    )

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    outlet_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    business_day: Mapped[date] = mapped_column(Date, primary_key=True)
    figures: Mapped[str] = mapped_column(Text)  # core.reports.Figures.as_json(), canonical JSON
    z_report_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# Like the day figures, kept by sealing for a package above it (stalela.analytics), so it lives here.
class SalesTally(TenantOwned, Base):
    """Additive sums of sealed invoices, for analytics: one row per period, outlet, currency and dimension value
    (``tallies.py`` lists the kinds: totals, types and tax groups per business day and per month; buyers per
    month over the whole tenant, in ``analytics_buyers``); updated in the sealing transaction by one upsert
    that only adds.

    Amounts are integer cents, net: a credit note's amounts count negative in ``amount``, ``base`` and ``vat``,
    and its total is also added to ``credited`` (``credit_count`` of the documents were credit notes), so
    sales are ``amount + credited``. Not a fiscal record: recomputable from the invoices
    (``stalela analytics rebuild``).
    """

    __tablename__ = "analytics_sales"

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    period: Mapped[date] = mapped_column(Date, primary_key=True)  # the business day, or its month's first day
    outlet_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    currency: Mapped[str] = mapped_column(String(8), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # the type, group|rate, or "" (totals)
    count: Mapped[int] = mapped_column(BigInteger)
    credit_count: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)  # the invoices' totals (tax rows: the group's amount)
    credited: Mapped[int] = mapped_column(BigInteger)
    base: Mapped[int] = mapped_column(BigInteger)
    vat: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class BuyerTally(TenantOwned, Base):
    """What each buyer (a data subject: the same buyer across invoices and outlets) bought per month, quarter
    and year (``grain`` m, q, y) and currency, over the whole tenant, for analytics' top buyers: the same sums
    as ``SalesTally``, added to in the same sealing transaction. A table of its own, keyed by currency and
    grain first, so that the buyers of a range are read from a few contiguous ranges of the key, a year as one
    row per buyer instead of twelve."""

    __tablename__ = "analytics_buyers"

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    currency: Mapped[str] = mapped_column(String(8), primary_key=True)
    grain: Mapped[str] = mapped_column(String(1), primary_key=True)  # m, q or y
    period: Mapped[date] = mapped_column(Date, primary_key=True)  # the first day of the month, quarter or year
    subject_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)
    credit_count: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)
    credited: Mapped[int] = mapped_column(BigInteger)
    # The buyer's latest invoice of the period: where its name is read back from (never stored here).
    ref: Mapped[str | None] = mapped_column(String(40), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
