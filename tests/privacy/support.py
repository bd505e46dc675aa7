"""Rows past (and short of) their retention rule, written as the services would have left them."""
from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from stalela.assistants.models import DraftApproval, InvoiceDraft
from stalela.auth.models import Invitation, RefreshToken
from stalela.authority.arca.models import ArcaTicket
from stalela.db.base import utcnow
from stalela.fiscal.invoices.models import IdempotencyRecord
from stalela.kit.ids import new_id
from stalela.outbox.models import OutboxEvent
from stalela.privacy.retention_models import RetentionMark
from stalela.tenancy.context import bind_tenant
from stalela.webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookMessage

DAY = timedelta(days=1)
PERSON = {"name": "Jean Mukendi", "email": "jean.mukendi@example.cd"}
MODELS = {"delivered_outbox_events": OutboxEvent, "expired_idempotency_records": IdempotencyRecord,
          "webhook_attempts": WebhookAttempt, "settled_webhook_messages": WebhookMessage,
          "ended_refresh_tokens": RefreshToken, "expired_invitations": Invitation, "expired_arca_tickets": ArcaTicket,
          "stale_invoice_drafts": InvoiceDraft}
# Tables whose rows go with a purged row of another (data map rule ``with:table``), counted by ``rows`` too.
ALONG = {"draft_approvals": DraftApproval}


def now() -> datetime:
    return utcnow().replace(microsecond=0)


@dataclass
class Seeded:
    """Per purger, the keys of the rows past their rule at ``at`` (the others are not)."""

    at: datetime
    due: dict[str, list[str]] = field(default_factory=dict)
    dates: dict[str, datetime] = field(default_factory=dict)  # purger -> the date a hold's range matches
    along: dict[str, int] = field(default_factory=dict)  # ALONG table -> rows that go with the due ones


async def seed(db, tenant_id: str, at: datetime) -> Seeded:  # noqa: ANN001
    out = Seeded(at)
    old_event, old_message, old_attempt = new_id("evt"), new_id("msg"), new_id("wat")
    invitation, fam_a, fam_b = new_id("inv"), new_id("fam"), new_id("fam")
    tokens_a = [new_id("rtk"), new_id("rtk")]
    stale_draft, fresh_draft = new_id("drf"), new_id("drf")
    async with db.transaction() as s:
        await bind_tenant(s, tenant_id)
        s.add_all([
            OutboxEvent(tenant_id=tenant_id, id=old_event, topic="invoice.sealed", payload="{}", created_at=at - 41 * DAY,
                        available_at=at - 41 * DAY, attempts=1, status="done", done_at=at - 40 * DAY),
            OutboxEvent(tenant_id=tenant_id, id=new_id("evt"), topic="invoice.sealed", payload="{}",
                        created_at=at - 10 * DAY, available_at=at - 10 * DAY, attempts=1, status="done",
                        done_at=at - 10 * DAY),  # delivered 10 days ago: kept 30
            OutboxEvent(tenant_id=tenant_id, id=new_id("evt"), topic="invoice.sealed", payload="{}",
                        created_at=at - 90 * DAY, available_at=at - 90 * DAY, attempts=25, status="dead"),  # replayable
            IdempotencyRecord(tenant_id=tenant_id, key="idem-old", request_hash="0" * 64, status_code=201,
                              response=f'{{"buyer": {{"name": "{PERSON["name"]}"}}}}', created_at=at - 31 * DAY,
                              expires_at=at - DAY),
            IdempotencyRecord(tenant_id=tenant_id, key="idem-new", request_hash="0" * 64, status_code=201,
                              response="{}", created_at=at - DAY, expires_at=at + 29 * DAY),
            Invitation(tenant_id=tenant_id, id=invitation, email=PERSON["email"], name=PERSON["name"], role="cashier",
                       outlet_ids="[]", token_hash=secrets.token_hex(32), expires_at=at - DAY, created_at=at - 8 * DAY),
            # A login whose every token is over; and one that still has a live token (reuse detection).
            RefreshToken(tenant_id=tenant_id, id=tokens_a[0], user_id="usr_x", family_id=fam_a,
                         token_hash=secrets.token_hex(32), expires_at=at - 3 * DAY, used_at=at - 5 * DAY,
                         created_at=at - 10 * DAY),
            RefreshToken(tenant_id=tenant_id, id=tokens_a[1], user_id="usr_x", family_id=fam_a,
                         token_hash=secrets.token_hex(32), expires_at=at + 2 * DAY, revoked_at=at - 2 * DAY,
                         created_at=at - 5 * DAY),
            RefreshToken(tenant_id=tenant_id, id=new_id("rtk"), user_id="usr_x", family_id=fam_b,
                         token_hash=secrets.token_hex(32), expires_at=at - 3 * DAY, used_at=at - 4 * DAY,
                         created_at=at - 10 * DAY),
            RefreshToken(tenant_id=tenant_id, id=new_id("rtk"), user_id="usr_x", family_id=fam_b,
                         token_hash=secrets.token_hex(32), expires_at=at + 60 * DAY, created_at=at - 4 * DAY),
            ArcaTicket(tenant_id=tenant_id, service="wsfe", environment="homologation", token="t", sign="s",
                       expires_at=at - DAY, created_at=at - 2 * DAY, cuits=""),
            WebhookEndpoint(tenant_id=tenant_id, id=(endpoint := new_id("we")), url="https://hooks.example.com/r",
                            secret_encrypted=b"x", created_at=at - 50 * DAY, updated_at=at - 50 * DAY),
        ])
        await s.flush()
        s.add_all([
            WebhookMessage(tenant_id=tenant_id, id=old_message, endpoint_id=endpoint, event_id=new_id("evt"),
                           event_type="invoice.sealed", payload="{}", status="delivered", attempts=1,
                           next_attempt_at=at - 45 * DAY, created_at=at - 45 * DAY, updated_at=at - 40 * DAY,
                           delivered_at=at - 40 * DAY),
            WebhookMessage(tenant_id=tenant_id, id=new_id("msg"), endpoint_id=endpoint, event_id=new_id("evt"),
                           event_type="invoice.sealed", payload="{}", status="pending", attempts=3,
                           next_attempt_at=at, created_at=at - 45 * DAY, updated_at=at - 40 * DAY),  # retrying
            # A draft discarded 91 days ago, naming no outlet (none was active), with the approval it had; and one
            # changed 30 days ago, kept 90.
            _draft(tenant_id, stale_draft, "discarded", created_at=at - 120 * DAY, updated_at=at - 91 * DAY),
            DraftApproval(tenant_id=tenant_id, id=new_id("apr"), draft_id=stale_draft, content_hash="0" * 64,
                          expires_at=at - 119 * DAY, approved_by="user:usr_x", created_at=at - 120 * DAY),
            _draft(tenant_id, fresh_draft, "draft", created_at=at - 40 * DAY, updated_at=at - 30 * DAY),
            DraftApproval(tenant_id=tenant_id, id=new_id("apr"), draft_id=fresh_draft, content_hash="0" * 64,
                          expires_at=at - 30 * DAY, approved_by="user:usr_x", created_at=at - 30 * DAY),
        ])
        await s.flush()
        s.add(WebhookAttempt(tenant_id=tenant_id, id=old_attempt, message_id=old_message, endpoint_id=endpoint,
                             attempt=1, started_at=at - 40 * DAY, outcome="succeeded", status_code=200))
    out.due = {"expired_idempotency_records": ["idem-old"], "delivered_outbox_events": [old_event],
               "webhook_attempts": [old_attempt], "settled_webhook_messages": [old_message],
               "ended_refresh_tokens": sorted(tokens_a), "expired_invitations": [invitation],
               "expired_arca_tickets": ["wsfe:homologation"], "stale_invoice_drafts": [stale_draft]}
    out.dates = {"delivered_outbox_events": at - 41 * DAY, "settled_webhook_messages": at - 45 * DAY,
                 "webhook_attempts": at - 45 * DAY, "expired_idempotency_records": at - 31 * DAY,
                 "expired_invitations": at - 8 * DAY, "ended_refresh_tokens": at - 10 * DAY,
                 "expired_arca_tickets": at - 2 * DAY, "stale_invoice_drafts": at - 120 * DAY}
    out.along = {"draft_approvals": 1}
    return out


def _draft(tenant_id: str, draft_id: str, status: str, **dates: datetime) -> InvoiceDraft:
    body = {"type": "FV", "buyer": {"type": "PP", "name": PERSON["name"]}, "lines": []}
    return InvoiceDraft(tenant_id=tenant_id, id=draft_id, text=f"Facture pour {PERSON['name']}: 1 sac", locale="fr",
                        provider="rules", parser_version="rules-test", draft=json.dumps(body), confidence=Decimal("0.5"),
                        field_confidences="{}", reasons="[]", questions='["outlet_id: no active outlet"]',
                        content_hash="0" * 64, status=status, outlet_id=None, created_by="api_key:key_x", **dates)


async def rows(db, tenant_id: str) -> dict[str, int]:  # noqa: ANN001
    """Rows per purger's table, and the marks standing, for the tenant."""
    async with db.transaction(readonly=True) as s:
        await bind_tenant(s, tenant_id)
        out = {name: (await s.execute(select(func.count()).select_from(model)
                                      .where(model.tenant_id == tenant_id))).scalar_one()
               for name, model in (MODELS | ALONG).items()}
        out["marks"] = (await s.execute(select(func.count()).select_from(RetentionMark)
                                        .where(RetentionMark.tenant_id == tenant_id))).scalar_one()
    return out


def acted(result: dict) -> dict[str, dict[str, list]]:
    """{purger: {mark|purge|unmark: sample}} for the sets that are not empty; counts checked equal to samples."""
    out = {}
    for entry in result["purgers"]:
        for which in ("mark", "purge", "unmark"):
            if entry[which]["count"]:
                out.setdefault(entry["purger"], {})[which] = entry[which]["sample"]
    return out


def counts(result: dict) -> dict[tuple[str, str], int]:
    return {(e["purger"], w): e[w]["count"] for e in result["purgers"] for w in ("mark", "purge", "unmark")
            if e[w]["count"]}
