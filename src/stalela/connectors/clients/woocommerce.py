"""WooCommerce REST API v3 (consumer key and secret over HTTP Basic).

WooCommerce never retries a webhook and disables it after five failures, so the poll is what recovers a
missed order, and each poll also looks at the webhook's status and re-enables it (``check_webhook``).
An order note is not idempotent (each POST adds one), so the write-back reads the order first: the note is
added only while our metadata is absent, and the metadata (idempotent: a key set again is replaced) is
written after the note, so a crash between the two leaves at most what a retry completes.
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx

from stalela.connectors.clients.base import OrderNotFound, PlatformError, Written, call, decode

API = "/wp-json/wc/v3"
PAGE = 100
NUMBER_KEY, URL_KEY = "_stalela_fiscal_number", "_stalela_verify_url"


class WooCommerceClient:
    platform = "woocommerce"

    def __init__(self, base_url: str, credentials: dict[str, Any], allow_private: bool) -> None:
        self.base = base_url.rstrip("/") + API
        self.auth = httpx.BasicAuth(credentials["consumer_key"], credentials["consumer_secret"])
        self.allow_private = allow_private

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await call(self.allow_private, method, f"{self.base}{path}", auth=self.auth, **kwargs)

    async def fetch_order(self, order_ref: str) -> dict[str, Any]:
        try:
            return decode(await self._call("GET", f"/orders/{order_ref}"))
        except PlatformError as exc:
            if exc.status == 404:
                raise OrderNotFound(order_ref) from None
            raise

    async def complete(self, order: dict[str, Any]) -> dict[str, Any]:
        return order

    async def buyer_details(self, order: dict[str, Any]) -> dict[str, Any] | None:
        return None

    async def updated_since(self, cursor: str | None) -> AsyncIterator[list[dict[str, Any]]]:
        page = 1
        while True:
            params = {"orderby": "modified", "order": "asc", "per_page": str(PAGE), "page": str(page),
                      "dates_are_gmt": "true"}
            if cursor:
                params["modified_after"] = cursor
            r = await self._call("GET", "/orders", params=params)
            yield decode(r)
            if page >= int(r.headers.get("x-wp-totalpages") or 1):
                return
            page += 1

    async def write_back(self, order: dict[str, Any], fiscal_number: str, verify_url: str,
                         pdf: Callable[[], Awaitable[bytes]]) -> Written:
        current = await self.fetch_order(str(order["id"]))
        meta = {m.get("key"): m.get("value") for m in current.get("meta_data") or []}
        if meta.get(NUMBER_KEY) == fiscal_number and meta.get(URL_KEY) == verify_url:
            return Written(["already written"])
        notes = decode(await self._call("GET", f"/orders/{order['id']}/notes"))
        text = f"Stalela: fiscal invoice {fiscal_number} — {verify_url}"
        if not any(n.get("note") == text for n in notes):
            await self._call("POST", f"/orders/{order['id']}/notes", json={"note": text, "customer_note": False})
        await self._call("PUT", f"/orders/{order['id']}",
                         json={"meta_data": [{"key": NUMBER_KEY, "value": fiscal_number},
                                             {"key": URL_KEY, "value": verify_url}]})
        return Written(["order note", f"meta {NUMBER_KEY}", f"meta {URL_KEY}"])

    async def check_webhook(self, webhook_id: str) -> str | None:
        """Re-enable the store's webhook if WooCommerce disabled it; what was done, or None."""
        hook = decode(await self._call("GET", f"/webhooks/{webhook_id}"))
        if hook.get("status") == "active":
            return None
        await self._call("PUT", f"/webhooks/{webhook_id}", json={"status": "active"})
        return f"webhook {webhook_id} was {hook.get('status')}: re-enabled"
