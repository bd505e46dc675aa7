"""Shopify Admin API 2025-01: orders over REST, the write-back over GraphQL ``metafieldsSet``.

REST Admin is legacy for new public apps (GraphQL only since 2025-04), but custom and existing apps keep
it, and an order read is one call either way; the write-back uses GraphQL, where metafields live.
``metafieldsSet`` is atomic and setting the same value twice changes nothing: retrying it is safe.
"""
from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from stalela.connectors.clients.base import OrderNotFound, PlatformError, Written, call, decode

VERSION = "2025-01"
PAGE = 250
_NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')
_METAFIELDS = ("mutation metafieldsSet($metafields: [MetafieldsSetInput!]!) { metafieldsSet(metafields: $metafields) "
               "{ metafields { key namespace value } userErrors { field message code } } }")


class ShopifyClient:
    platform = "shopify"

    def __init__(self, base_url: str, credentials: dict[str, Any], allow_private: bool) -> None:
        self.base = base_url.rstrip("/")
        self.token = credentials["access_token"]
        self.allow_private = allow_private

    def _headers(self) -> dict[str, str]:
        return {"X-Shopify-Access-Token": self.token}

    async def fetch_order(self, order_ref: str) -> dict[str, Any]:
        try:
            r = await call(self.allow_private, "GET", f"{self.base}/admin/api/{VERSION}/orders/{order_ref}.json",
                           headers=self._headers())
        except PlatformError as exc:
            if exc.status == 404:
                raise OrderNotFound(order_ref) from None
            raise
        return decode(r)["order"]

    async def complete(self, order: dict[str, Any]) -> dict[str, Any]:
        return order

    async def buyer_details(self, order: dict[str, Any]) -> dict[str, Any] | None:
        return None  # the order carries its buyer (note_attributes hold a tax id, when the shop asks for one)

    async def updated_since(self, cursor: str | None) -> AsyncIterator[list[dict[str, Any]]]:
        params = {"status": "any", "limit": str(PAGE)}
        if cursor:
            params["updated_at_min"] = cursor
        url: str | None = f"{self.base}/admin/api/{VERSION}/orders.json"
        while url:
            r = await call(self.allow_private, "GET", url, headers=self._headers(), params=params)
            yield decode(r)["orders"]
            found = _NEXT.search(r.headers.get("link", ""))
            url, params = (found.group(1), None) if found else (None, None)

    async def write_back(self, order: dict[str, Any], fiscal_number: str, verify_url: str,
                         pdf: Callable[[], Awaitable[bytes]]) -> Written:
        owner = order.get("admin_graphql_api_id") or f"gid://shopify/Order/{order['id']}"
        fields = [{"ownerId": owner, "namespace": "stalela", "key": "fiscal_number", "type": "single_line_text_field",
                   "value": fiscal_number},
                  {"ownerId": owner, "namespace": "stalela", "key": "verify_url", "type": "url", "value": verify_url}]
        r = await call(self.allow_private, "POST", f"{self.base}/admin/api/{VERSION}/graphql.json",
                       headers=self._headers(), json={"query": _METAFIELDS, "variables": {"metafields": fields}})
        answer = decode(r)
        errors = answer.get("errors") or ((answer.get("data") or {}).get("metafieldsSet") or {}).get("userErrors")
        if errors:
            raise PlatformError(f"metafieldsSet refused: {str(errors)[:300]}", code="platform_refused")
        return Written(["metafield stalela.fiscal_number", "metafield stalela.verify_url"])
