"""Tienda Nube (Nuvemshop) API 2025-03: ``Authentication: bearer`` (their spelling) and a User-Agent,
which the API requires. Its webhooks carry only {store_id, event, id}: the order is always read back."""
from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from stalela.connectors.clients.base import OrderNotFound, PlatformError, Written, call, decode

VERSION = "2025-03"
PAGE = 200


class TiendaNubeClient:
    platform = "tiendanube"

    def __init__(self, base_url: str, store_id: str, credentials: dict[str, Any], allow_private: bool) -> None:
        self.base = f"{base_url.rstrip('/')}/{VERSION}/{store_id}"
        self.token = credentials["access_token"]
        self.allow_private = allow_private

    def _headers(self) -> dict[str, str]:
        return {"Authentication": f"bearer {self.token}"}

    async def fetch_order(self, order_ref: str) -> dict[str, Any]:
        try:
            r = await call(self.allow_private, "GET", f"{self.base}/orders/{order_ref}", headers=self._headers())
        except PlatformError as exc:
            if exc.status == 404:
                raise OrderNotFound(order_ref) from None
            raise
        return decode(r)

    async def complete(self, order: dict[str, Any]) -> dict[str, Any]:
        return order

    async def buyer_details(self, order: dict[str, Any]) -> dict[str, Any] | None:
        return None  # contact_identification is on the order

    async def updated_since(self, cursor: str | None) -> AsyncIterator[list[dict[str, Any]]]:
        page = 1
        while True:
            params = {"page": str(page), "per_page": str(PAGE)}
            if cursor:
                params["updated_at_min"] = cursor
            try:
                r = await call(self.allow_private, "GET", f"{self.base}/orders", headers=self._headers(),
                               params=params)
            except PlatformError as exc:
                if exc.status == 404:  # "Last page is N": past the end
                    return
                raise
            orders = decode(r)
            yield orders
            if len(orders) < PAGE:
                return
            page += 1

    async def write_back(self, order: dict[str, Any], fiscal_number: str, verify_url: str,
                         pdf: Callable[[], Awaitable[bytes]]) -> Written:
        # The owner note is replaced whole, so writing it again is harmless; the merchant's own note is kept.
        line = f"Stalela: fiscal invoice {fiscal_number} — {verify_url}"
        note = order.get("owner_note") or ""
        if line not in note:
            note = f"{note}\n{line}".strip()
            await call(self.allow_private, "PUT", f"{self.base}/orders/{order['id']}", headers=self._headers(),
                       json={"owner_note": note})
        return Written(["owner_note"])
