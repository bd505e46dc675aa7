"""The data map, as code: every column of every table, with its category and its retention rule.

Categories: ``personal`` (identifies or describes a natural person), ``fiscal`` (part of the fiscal
record the law makes us keep), ``operational`` (what running the service needs), ``secret``
(credentials and keys, stored hashed or encrypted).

Rules (how long a value lives):

- ``statutory``: a fiscal record, kept until its ``retain_until`` (the jurisdiction's floor, or the
  tenant's longer ``fiscal`` policy, from the end of the financial year). Never deleted by the
  retention engine: rows are sealed or chained; the personal parts of a sealed invoice are shredded
  by destroying the subject's key (issue 16, item 2) at ``retain_until``.
- ``while_account``: while the tenant's account (or the user, for a user's rows; the deployment, for
  platform rows) exists; removed by offboarding or erasure, not by time.
- ``days:N@column``: purged N days after ``column`` (the category's tenant policy may change N).
- ``until_expiry@column``: purged once ``column`` (an expiry) has passed (plus the policy's period).
- ``with:table``: goes with its row in ``table``: deleted by that table's purger, in the same
  statements (an approval with its draft); no purger, marks or grace of its own.
- ``forever``: kept for good, because others must verify with it (public keys of old seals).
- ``forever_pseudonymous``: kept for good, holding ids only, never a personal value.

A rule that purges (``days:`` and ``until_expiry``) names its purger in ``retention_repository``; a
purged row goes whole, so every column of its table names the same purger. ``tests/privacy`` fails on
an untagged column or a tag for a column that no longer exists, so no new column, personal or not,
goes in unclassified. ``python -m stalela.privacy.datamap`` prints the table docs/privacy-retention.md
carries (a test keeps the two equal).
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Any

from stalela.privacy.retention_data import CATEGORIES

RULE = re.compile(r"^(statutory|while_account|forever|forever_pseudonymous|days:(\d+)@(\w+)|until_expiry@(\w+)"
                  r"|with:(\w+))$")


@dataclass(frozen=True)
class Tag:
    category: str
    rule: str
    purger: str | None = None
    note: str = ""

    @property
    def purgeable(self) -> bool:
        return self.rule.startswith(("days:", "until_expiry@"))

    @property
    def anchor(self) -> str | None:
        """The column a purging rule counts from."""
        return self.rule.rsplit("@", 1)[1] if self.purgeable else None

    @property
    def default_days(self) -> int:
        return int(self.rule[5:].split("@")[0]) if self.rule.startswith("days:") else 0

    @property
    def parent(self) -> str | None:
        """The table whose purge takes this row with it (``with:table``)."""
        return self.rule[5:] if self.rule.startswith("with:") else None


@dataclass(frozen=True)
class TableMap:
    name: str
    rule: str
    columns: dict[str, Tag]
    purger: str | None
    note: str


def table(name: str, rule: str, *, purger: str | None = None, note: str = "", rules: dict[str, str] | None = None,
          notes: dict[str, str] | None = None, **categories: str) -> TableMap:
    """One table: its default rule, then its columns by category (space-separated names, each listed:
    nothing is tagged by default, so a new column is untagged until someone decides)."""
    if not RULE.match(rule):
        raise ValueError(f"{name}: unknown rule {rule!r}")
    columns: dict[str, Tag] = {}
    for category, names in categories.items():
        if category not in CATEGORIES:
            raise ValueError(f"{name}: unknown category {category!r}")
        for column in names.split():
            if column in columns:
                raise ValueError(f"{name}.{column} is tagged twice")
            own = (rules or {}).get(column, rule)
            if not RULE.match(own):
                raise ValueError(f"{name}.{column}: unknown rule {own!r}")
            columns[column] = Tag(category, own, purger if own == rule else None, (notes or {}).get(column, ""))
    return TableMap(name, rule, columns, purger, note)


_SEALED = "tenant_id id outlet_id key_id seal_hash signature payload"
_TABLES = [
    table("tenants", "while_account", personal="name tax_id",
          operational="id jurisdiction status vat_condition created_at updated_at tier placement "
                      "rate_limit_per_second rate_limit_burst locale",
          notes={"name": "a sole trader's name is a person's", "tax_id": "a sole trader's tax id is a person's"}),
    table("tenant_logos", "while_account",
          operational="tenant_id content_type data sha256 width height updated_at",
          note="the logo printed on the tenant's documents; purged at offboarding"),
    table("outlets", "while_account", personal="address",
          operational="tenant_id id code name timezone status pos_number first_business_day created_at updated_at",
          notes={"address": "a sole trader's outlet may be their home"}),
    table("api_keys", "while_account", secret="key_hash",
          operational="tenant_id id name prefix outlet_id created_at revoked_at last_used_at scopes"),
    table("users", "while_account", personal="email name", secret="password_hash",
          operational="tenant_id id role status outlet_ids locale created_at updated_at",
          note="a user's own erasure removes them (issue 16, item 3)"),
    table("invitations", "until_expiry@expires_at", purger="expired_invitations", personal="email name",
          secret="token_hash", operational="tenant_id id role outlet_ids invited_by expires_at used_at created_at"),
    table("refresh_tokens", "until_expiry@expires_at", purger="ended_refresh_tokens", secret="token_hash",
          operational="tenant_id id user_id family_id expires_at used_at revoked_at created_at",
          note="a whole login (family) goes once its last token expired or was revoked: a used token keeps "
               "detecting reuse while its family lives"),
    table("tenant_provisioning", "while_account",
          operational="tenant_id idempotency_key request_hash step status attempts error created_at updated_at",
          note="control plane: the tenant's provisioning job"),
    table("tenant_moves", "while_account",
          operational="tenant_id id to_tier source target status step receipt error created_at updated_at "
                      "completed_at purged_at",
          note="control plane: moves between tiers and their signed receipts (figures and roots, no personal value)"),
    table("operator_users", "while_account", personal="email name oidc_subject", secret="password_hash",
          operational="id role status oidc_issuer locale created_at updated_at",
          note="platform row: an operator's account, deactivated rather than deleted (the platform audit log "
               "names operators by id)"),
    table("operator_sessions", "while_account", secret="token_hash",
          operational="id operator_id method created_at expires_at revoked_at",
          note="platform row: console sessions; GAP: expired ones are not pruned yet"),
    table("platform_audit_log", "forever_pseudonymous",
          operational="seq id at actor action target prev_hash hash",
          personal="details ip", rules={"details": "forever", "ip": "forever"},
          notes={"details": "operators are named by id, never by e-mail; a tenant's name may appear in details",
                 "ip": "the operator's address, in the hash chain"}),
    table("auth_keys", "while_account", secret="private_key", operational="id public_jwk created_at retired_at",
          note="platform row: the deployment's access-token keys"),
    table("audit_log", "forever_pseudonymous",
          operational="tenant_id seq id at actor action target prev_hash hash",
          personal="details ip", rules={"details": "forever", "ip": "forever"},
          notes={"details": "GAP: some actions record an e-mail (user.created, user.invited); the chain hashes it, "
                            "so it cannot be removed: pseudonymise at write (issue 16, item 3)",
                 "ip": "GAP: the caller's address, in the hash chain (as details)"}),
    table("authority_devices", "while_account", secret="token_encrypted",
          operational="tenant_id outlet_id nim base_url status last_error created_at updated_at"),
    # Offline sealing (docs/offline.md): a device's public key and its credentials verify the invoices it
    # sealed offline for as long as those invoices are kept.
    table("devices", "statutory", fiscal="tenant_id id outlet_id public_jwk thumbprint created_at",
          operational="name status updated_at",
          notes={"public_jwk": "the device's public key: it verifies the invoices the device sealed offline",
                 "name": "a label the merchant chose for a till, not a person's name"}),
    table("device_credentials", "statutory",
          fiscal="tenant_id jti device_id outlet_id series_id block_id status_index not_before expires_at token caps "
                 "revoked_at revocation_reason created_at",
          note="the delegated credential (a JWS signed by the tenant's key) binds the device key to a block of numbers: "
               "part of every offline invoice's proof; its revocation is published in the status list"),
    table("device_nonces", "until_expiry@expires_at", purger="expired_device_nonces",
          operational="tenant_id nonce expires_at used_at", note="single-use registration challenges, valid 60 s"),
    table("arca_credentials", "while_account", fiscal="certificate_pem subject cuit", secret="key_encrypted",
          operational="tenant_id environment wsaa_url wsfe_url key_label pending_key_label not_after created_at "
                      "updated_at"),
    table("arca_tickets", "until_expiry@expires_at", purger="expired_arca_tickets", secret="token sign",
          operational="tenant_id service environment expires_at generated_at cuits created_at"),
    table("series", "statutory",
          fiscal="tenant_id id outlet_id code counter first_counter generation last_hash updated_at"),
    table("invoices", "statutory", personal="document buyer_sealed",
          fiscal=f"{_SEALED} series_id counter fiscal_number type issued_at reference original total_cents "
                 "leaf_index origin merged_at created_at",
          operational="buyer_subject",
          notes={"document": "v1 invoices: the buyer in clear; v2 (seal format 2): no personal buyer, which is in "
                             "buyer_sealed",
                 "buyer_sealed": "the buyer and its salt, AES-256-GCM under the subject's data key: shredding the "
                                 "key at retain_until erases it (the row never changes)",
                 "buyer_subject": "a subject id (privacy_subjects), no personal value",
                 "payload": "signed bytes: a v1 payload holds the buyer's tax id, which no shredding can reach; "
                            "v2 holds a salted commitment instead"}),
    table("idempotency_keys", "until_expiry@expires_at", purger="expired_idempotency_records",
          personal="response", operational="tenant_id key request_hash status_code created_at expires_at",
          notes={"response": "the sealed invoice as answered: v1 with its buyer; v2 without (read back on replay)"}),
    table("privacy_tenant_keys", "statutory", secret="material",
          operational="tenant_id id backend status destroy_after created_at destroyed_at",
          note="wraps the tenant's subject keys; destroyed at the archive's statutory end after offboarding"),
    table("privacy_subjects", "statutory", secret="wrapped_key",
          operational="tenant_id id status key_id tenant_key_id last_seen_at retain_until merged_into created_at "
                      "restricted_at shredded_at",
          note="one per data subject (buyer): its data key, wrapped; shredded (wrapped_key cleared) at retain_until"),
    table("privacy_subject_ids", "while_account", operational="tenant_id id_hash subject_id",
          note="keyed HMAC pseudonyms of a subject's identifiers; replaced by tombstones on erasure"),
    table("privacy_erased_ids", "forever_pseudonymous", operational="tenant_id id_hash erased_at released_at",
          note="tombstones: an erased identifier is never given a key again (unless a request says new subject)"),
    table("privacy_exports", "while_account", personal="subject_encrypted",
          operational="tenant_id id scope status requested_by leaf_bound audit_seq_bound storage_key sha256 size "
                      "counts pdfs tagmanifest_sha256 signature key_id error build_claimed_until created_at "
                      "completed_at expires_at ended_at",
          notes={"subject_encrypted": "a subject export's identifiers, AES-GCM under the master key; cleared once the "
                                      "export is built, revoked or failed"},
          note="the archive files expire after 72 h (their link's life) and are deleted; erasure and offboarding "
               "revoke live ones"),
    table("privacy_erasure_requests", "statutory",
          operational="tenant_id id kind status pseudonyms user_id requested_by received_at due_at completed_at "
                      "erased restricted receipt",
          note="accountability (GDPR Art. 5(2)): pseudonyms only, never the subject's values"),
    table("privacy_offboardings", "statutory",
          operational="tenant_id id mode state requested_by created_at deprovisioned_at exported_at purged_at "
                      "deleted_at export_id export_sha256 export_url purged archive_key_ids "
                      "archive_key_destroy_after receipt",
          note="the record of a tenant's offboarding and its signed receipt"),
    table("invoice_sync", "statutory",
          fiscal="tenant_id invoice_id outlet_id status uid error_code error details sealed_at",
          operational="attempts updated_at claimed_until"),
    table("authority_acks", "statutory",
          fiscal="tenant_id invoice_id nim uid code counters authority_time qr_code raw created_at"),
    table("report_day_figures", "statutory",
          fiscal="tenant_id outlet_id business_day figures z_report_id updated_at",
          note="derived from the sealed invoices (rebuildable), kept with them"),
    table("merkle_logs", "statutory", fiscal="tenant_id size frontier updated_at"),
    table("merkle_nodes", "statutory", fiscal="tenant_id level idx hash"),
    table("ledger_events", "statutory",
          fiscal="tenant_id id leaf_index kind outlet_id series_id block_id key_id seal_hash signature payload "
                 "created_at",
          note="cloud-sealed records of offline sealing (number blocks, refusals, voids) in the Merkle log"),
    table("number_blocks", "statutory",
          fiscal="tenant_id id outlet_id series_id device_id credential_jti first last anchor_hash allocated_at "
                 "expires_at status state updated_at",
          note="where each block of offline numbers stands; its sealed record is in ledger_events"),
    table("offline_receipts", "statutory",
          fiscal="tenant_id id block_id credential_jti counter device_hash seal outcome code invoice_id event_id batch_id "
                 "created_at",
          note="what each returned number of a block became (merged or refused); seal: the device's seal as uploaded "
               "(a salted buyer commitment, never a person's data in clear), half of any fork proof"),
    table("fork_proofs", "statutory",
          fiscal="tenant_id id credential_jti block_id counter key_id seal_hash signature payload created_at",
          note="two device seals at one number, countersigned: the proof a credential was revoked on"),
    table("block_returns", "statutory",
          fiscal="tenant_id id block_id credential_jti statement_hash statement first last event_id created_at",
          note="a device-signed return of a block's unused numbers (its void record holds the hash): half of the "
               "proof when the device later signs an invoice at one of them"),
    # Drafting (docs/assistants.md): a draft's text and body may name a person (the buyer); an approval holds ids
    # and hashes only. A draft untouched for 90 days goes, whatever its status (a sealed draft's invoice is the
    # fiscal record, and stays), and its approvals with it; sooner at offboarding. A subject's erasure does not
    # search draft texts: the 90 days (plus the grace) bound how long a name may stay in one
    # (docs/privacy-retention.md, "Invoice drafts").
    table("invoice_drafts", "days:90@updated_at", purger="stale_invoice_drafts", personal="text draft",
          operational="tenant_id id locale provider parser_version confidence field_confidences reasons questions "
                      "content_hash status invoice_id outlet_id created_by created_at updated_at",
          notes={"text": "the request as written: may name the buyer, a person",
                 "draft": "the proposed invoice body, its buyer included",
                 "reasons": "the parser's explanations: may quote the text"},
          note="90 days after the last change (PATCH, discard, seal); the sealed invoice stays"),
    table("draft_approvals", "with:invoice_drafts",
          operational="tenant_id id draft_id content_hash expires_at approved_by used_at created_at",
          note="a person's single-use consent to seal one draft at one content hash (also in the audit log); "
               "deleted with its draft by its purger"),
    table("assistant_settings", "while_account",
          operational="tenant_id seal_policy confidence_threshold updated_by updated_at"),
    table("offline_batches", "while_account",
          operational="tenant_id id credential_jti digest invoices merged refused held status_code response received_at",
          note="a returned batch's answer (ids, numbers, codes), kept so the same batch gets the same answer"),
    table("checkpoints", "statutory",
          fiscal="tenant_id id tree_size root_hash timestamp reason key_id seal_hash signature payload"),
    table("z_reports", "statutory",
          fiscal=f"{_SEALED} business_day z_counter number counter_to invoice_count total_cents closed_at "
                 "closed_by checkpoint_id created_at"),
    table("signing_keys", "forever", fiscal="tenant_id id backend public_jwk status created_at not_before not_after",
          secret="private_ref", rules={"private_ref": "while_account"},
          note="public keys verify old seals for good"),
    table("export_jobs", "while_account",
          operational="tenant_id id status date_from date_to file_name sha256 bytes invoices error attempts "
                      "created_at claimed_at completed_at",
          note="the archive files themselves expire in the document store (issue 16, item 6)"),
    table("outbox", "days:30@done_at", purger="delivered_outbox_events",
          operational="tenant_id id topic payload created_at available_at attempts last_error status lease_until "
                      "claimed_by done_at",
          note="delivered events only: pending and dead ones stay (delivery, replay); payloads carry ids and totals"),
    # Marketplace connectors (docs/connectors.md): a delivery's body is the platform's order, buyer included.
    table("connections", "while_account", secret="credentials",
          operational="tenant_id id platform shop outlet_id status api_base_url options poll_interval_seconds "
                      "poll_cursor next_poll_at last_sync_at last_error last_error_at token_expires_at created_by "
                      "created_at updated_at",
          notes={"credentials": "the platform's tokens and secrets, AES-GCM under the master key; forgotten when "
                                "the connection is deleted"}),
    table("connector_deliveries", "days:30@received_at", purger="settled_connector_deliveries", personal="body",
          operational="tenant_id id connection_id topic dedup_key order_ref headers via status outcome received_at "
                      "processed_at",
          notes={"body": "the platform's webhook body: an order, with its buyer's name, address and e-mail"},
          note="processed and ignored deliveries; one not yet processed stays"),
    table("connector_orders", "while_account",
          operational="tenant_id connection_id order_key order_id status version invoice_id fiscal_number "
                      "credit_note_id reason detail difference platform_total currency write_back write_back_error "
                      "created_at updated_at",
          note="what became of each order (its invoice's id): the link that keeps one invoice per order"),
    table("webhook_endpoints", "while_account", secret="secret_encrypted previous_secret_encrypted",
          operational="tenant_id id url description event_types enabled disabled_reason disabled_at "
                      "previous_secret_expires_at failing_since created_at updated_at deleted_at"),
    table("webhook_messages", "days:30@updated_at", purger="settled_webhook_messages",
          operational="tenant_id id endpoint_id event_id event_type payload status attempts next_attempt_at "
                      "lease_until claimed_by last_status_code last_error created_at updated_at delivered_at",
          note="delivered and failed messages, with their attempts; pending ones stay. A failed message can be "
               "recovered until then"),
    table("webhook_attempts", "days:30@started_at", purger="webhook_attempts",
          operational="tenant_id id message_id endpoint_id attempt started_at outcome status_code latency_ms error "
                      "response_body"),
    table("retention_policies", "while_account",
          operational="tenant_id category years days grace_days updated_at updated_by"),
    table("retention_holds", "while_account", personal="reason",
          operational="tenant_id id outlet_id date_from date_to created_at created_by released_at released_by",
          notes={"reason": "free text: may name people"}),
    table("retention_marks", "while_account", operational="tenant_id purger row_key marked_at purge_after",
          note="a mark goes with the row it marks (purged, or no longer a candidate)"),
    table("retention_schedule", "while_account",
          operational="name next_run_at last_started_at last_finished_at last_result",
          note="platform row: when the daily retention run is due"),
    # Usage (billing): what a tenant is billed for, and how to recompute it. Kept with the account.
    table("usage_events", "while_account",
          operational="tenant_id id event_id resource quantity_units occurred_at received_at properties "
                      "payload_hash source",
          notes={"properties": "free JSON the tenant sends with an event: its integrators' choice"}),
    table("usage_voids", "while_account",
          operational="tenant_id event_id resource quantity_units occurred_at voided_at reason"),
    table("analytics_sales", "while_account",
          operational="tenant_id kind period outlet_id currency key count credit_count amount credited base vat "
                      "updated_at",
          note="analytics: sums derived from the sealed invoices (rebuildable); purged at offboarding"),
    table("analytics_buyers", "while_account",
          operational="tenant_id currency grain period subject_id count credit_count amount credited ref updated_at",
          note="analytics: what each buyer bought per month, quarter and year (rebuildable); purged at offboarding",
          notes={"subject_id": "a data subject id: a pseudonym, never a personal value (erasing the subject shreds "
                               "what links it to a person)",
                 "ref": "an invoice id, the name is read back from it (never stored here)"}),
    table("analytics_authority", "while_account",
          operational="tenant_id day outlet_id outcome count ms_sum le_1s le_5s le_15s le_1m le_5m le_15m le_1h "
                      "le_6h le_1d over_1d updated_at",
          note="analytics: the authority's outcomes summed per day (rebuildable); purged at offboarding"),
    table("usage_daily", "while_account",
          operational="tenant_id resource day quantity_units event_count events_digest"),
    table("usage_cursors", "while_account", operational="tenant_id aggregated_through"),
    table("usage_anomalies", "while_account",
          operational="tenant_id id resource day observed baseline spread score method threshold impact_eur status "
                      "status_by status_at created_at",
          notes={"status_by": "who acknowledged or dismissed it: user:<id> or api_key:<id>, an id, no personal value"}),
    # Rating and bills (billing). Plans, rate cards, exchange rates and the issuer are platform rows (the
    # operator's, no tenant): kept for the deployment's life.
    table("billing_plans", "while_account", operational="id name currency quotas created_at updated_at",
          note="platform row: the operator's plans"),
    table("billing_rate_cards", "while_account",
          operational="plan_id version effective_from prices created_at used_at",
          note="platform row: append-only; a card a bill used (used_at) is immutable, and recomputes that bill"),
    table("billing_accounts", "while_account",
          operational="tenant_id plan_id anomaly_threshold anomaly_method created_at updated_at"),
    table("billing_issuer", "while_account", operational="id issuer_tenant_id issuer_outlet_id updated_at",
          note="platform row: the tenant and outlet that seal the platform's bills"),
    table("billing_exchange_rates", "while_account",
          operational="period currency invoice_currency rate created_at updated_at used_at",
          note="platform row: immutable once a sealed bill was converted at it"),
    table("billing_bills", "while_account",
          operational="tenant_id id period status currency total_cents lines finalize_after issuer_tenant_id "
                      "invoice_id invoice_total_cents invoice_currency exchange_rate pending_reason created_at "
                      "updated_at sealed_at",
          notes={"lines": "rated usage: resources, quantities, amounts, rate-card versions, event counts and "
                          "digests of event ids; no personal value",
                 "invoice_id": "the sealed invoice is the ISSUER's fiscal record (invoices, statutory, under the "
                               "issuer's tenant): its buyer, this tenant's name and tax id (a person's, for a sole "
                               "trader), is kept and shredded like any buyer (invoices.buyer_sealed) by the issuer's "
                               "retention, not removed with this account"},
          note="the tenant's copy of its monthly bills; the fiscal record of each is the issuer's sealed invoice"),
]
DATA_MAP: dict[str, TableMap] = {t.name: t for t in _TABLES}


def tag(table_name: str, column: str) -> Tag | None:
    found = DATA_MAP.get(table_name)
    return found.columns.get(column) if found else None


def check(metadata: Any) -> tuple[list[str], list[str]]:
    """(untagged columns, tags of columns that do not exist), as ``table.column``, for a SQLAlchemy MetaData."""
    actual = {f"{t.name}.{c.name}" for t in metadata.tables.values() for c in t.columns}
    tagged = {f"{t.name}.{c}" for t in DATA_MAP.values() for c in t.columns}
    return sorted(actual - tagged), sorted(tagged - actual)


def purgeable_tables() -> dict[str, TableMap]:
    """Purger name -> the table its rule purges."""
    return {t.purger: t for t in DATA_MAP.values() if t.purger}


def markdown() -> str:
    """The map as a Markdown table: one row per table, its columns by category."""
    lines = ["| table | rule | personal | fiscal | operational | secret | notes |", "|---|---|---|---|---|---|---|"]
    for t in sorted(DATA_MAP.values(), key=lambda t: t.name):
        cells = []
        for category in ("personal", "fiscal", "operational", "secret"):
            cells.append(", ".join(f"`{c}`" + (f" ({tag.rule})" if tag.rule != t.rule else "")
                                   for c, tag in t.columns.items() if tag.category == category))
        notes = [t.note] if t.note else []
        notes += [f"`{c}`: {tag.note}" for c, tag in t.columns.items() if tag.note]
        rule = f"`{t.rule}`" + (f" (purger `{t.purger}`)" if t.purger else "")
        lines.append(f"| `{t.name}` | {rule} | " + " | ".join(cells) + " | " + "; ".join(notes) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown())
