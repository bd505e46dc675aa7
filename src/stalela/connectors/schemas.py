"""The connectors' API models. Credentials go in and never come out: a connection shows which kinds of
secret it holds (``credential_kinds``), not their values."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator

from stalela.kit.schemas import Rfc3339DateTime, StrictModel

Platform = Literal["shopify", "mercadolibre", "tiendanube", "woocommerce"]
PLATFORMS: tuple[str, ...] = ("shopify", "mercadolibre", "tiendanube", "woocommerce")

# Which credential fields each platform takes: one of the sets (tokens already issued, or an OAuth
# authorisation code we exchange ourselves). docs/connectors.md, "Setting up a connection".
CREDENTIAL_SETS: dict[str, tuple[frozenset[str], ...]] = {
    "shopify": (frozenset({"access_token", "webhook_secret"}), frozenset({"client_id", "client_secret", "code"})),
    "mercadolibre": (frozenset({"client_id", "client_secret", "refresh_token"}),
                     frozenset({"client_id", "client_secret", "code", "redirect_uri"})),
    "tiendanube": (frozenset({"access_token", "app_secret"}), frozenset({"client_id", "client_secret", "code"})),
    "woocommerce": (frozenset({"consumer_key", "consumer_secret", "webhook_secret"}),),
}
OPTIONAL_CREDENTIALS = {"mercadolibre": {"access_token"}}
WebhookId = Field(None, min_length=1, max_length=40, pattern=r"^[0-9]+$",
                  description="WooCommerce: the webhook's id (WooCommerce > Settings > Advanced > Webhooks), so that "
                  "each poll checks it and re-enables it when WooCommerce disabled it.")
Secret = Field(min_length=1, max_length=2000)


class ConnectionCreate(StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "platform": "shopify", "shop": "kin-market.myshopify.com", "outlet_id": "out_01JD5Y3K9X",
        "credentials": {"access_token": "shpat_...", "webhook_secret": "..."},
    }]})
    platform: Platform
    shop: str = Field(min_length=1, max_length=255, pattern=r"^[^\s\x00]+$",
                      description="Shopify: the shop's myshopify.com domain; Mercado Libre: the seller's user id; "
                      "Tienda Nube: the store id; WooCommerce: the site's https:// URL.")
    outlet_id: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$",
                           description="The outlet whose series numbers this store's invoices.")
    credentials: dict[str, str] = Field(description="The platform's secrets (see docs/connectors.md); stored "
                                        "encrypted and never shown again.")
    api_base_url: str | None = Field(None, min_length=1, max_length=500,
                                     description="Only for a self-hosted or test API (default: the platform's).")
    options: dict[str, Any] | None = Field(None, max_length=20, description="Mapping options (docs/connectors.md, "
                                           "\"Settings\"); Argentina needs issuer_vat_condition.")
    poll_interval_seconds: int = Field(600, ge=60, le=86400, strict=True)
    webhook_id: str | None = WebhookId
    backfill_since: Rfc3339DateTime | None = Field(
        None, description="Invoice the orders paid since this time too (default: only those changed from now on: "
        "a store's history is not sealed by surprise, with today's date).")

    @model_validator(mode="after")
    def _credentials(self) -> "ConnectionCreate":
        check_credentials(self.platform, set(self.credentials))
        if any(len(v) > 2000 or not v or "\x00" in v for v in self.credentials.values()):
            raise ValueError("a credential is 1 to 2000 characters")
        return self


def check_credentials(platform: str, given: set[str], *, codes: bool = True) -> None:
    allowed = OPTIONAL_CREDENTIALS.get(platform, set())
    sets = [s for s in CREDENTIAL_SETS[platform] if codes or "code" not in s]
    if not any(needed <= given and not (given - needed - allowed) for needed in sets):
        raise ValueError(f"{platform} credentials are " + " or ".join("{" + ", ".join(sorted(s)) + "}" for s in sets))


class ConnectionUpdate(StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "paused"}, {"poll_interval_seconds": 300}]})
    status: Literal["active", "paused"] | None = Field(None, description="paused: webhooks are acknowledged and "
                                                       "dropped, polls stop; active again: a poll catches up.")
    options: dict[str, Any] | None = Field(None, max_length=20)
    poll_interval_seconds: int | None = Field(None, ge=60, le=86400, strict=True)
    webhook_id: str | None = WebhookId
    credentials: dict[str, Annotated[str, Field(min_length=1, max_length=2000)]] | None = Field(
        None, description="New tokens for the same store (a revoked token, rotated keys): the connection, its "
        "cursor and its orders stay. Tokens only, no authorisation code; never shown again.")


class ConnectionOut(StrictModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    object: Literal["connection"] = "connection"
    platform: str
    shop: str
    outlet_id: str
    status: str
    webhook_url: str = Field(description="Register this URL with the platform (path relative to the service).")
    credential_kinds: list[str]
    options: dict[str, Any]
    webhook_id: str | None
    poll_interval_seconds: int
    poll_cursor: str | None
    last_sync_at: datetime | None
    last_webhook_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    orders: dict[str, int] = Field(description="Orders by status: invoiced, parked, pending, skipped, credited, "
                                   "dismissed.")
    created_at: datetime


class OrderOut(StrictModel):
    model_config = ConfigDict(from_attributes=True, extra="ignore")
    order_key: str
    order_id: str
    status: str
    version: str
    invoice_id: str | None
    fiscal_number: str | None
    credit_note_id: str | None
    reason: str | None
    detail: str | None
    difference: str | None
    platform_total: str | None
    currency: str | None
    write_back: str
    write_back_error: str | None
    updated_at: datetime


class Received(StrictModel):
    received: bool = True
    delivery_id: str | None = None
    note: str | None = None


class SyncStarted(StrictModel):
    connection_id: str
    orders_seen: int
    orders_changed: int
    cursor: str | None
