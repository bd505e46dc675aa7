"""Mercado Libre: orders, the buyer's fiscal data (``billing_info``, x-version 2) and the fiscal document
upload (one PDF per pack, at most 1 MB). Access tokens last hours and every refresh hands out a new
refresh token, so refreshes of one seller are serialised by the caller's token source (``tokens.py``)."""
from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx

from stalela.connectors.mapping import merge_pack
from stalela.connectors.clients.base import (
    OrderNotFound,
    PlatformError,
    TokenSource,
    Written,
    authorised,
    call,
    decode,
)

PAGE = 50
MAX_PDF = 1_000_000


class MercadoLibreClient:
    platform = "mercadolibre"

    def __init__(self, base_url: str, seller_id: str, token: TokenSource, allow_private: bool) -> None:
        self.base = base_url.rstrip("/")
        self.seller = seller_id
        self.token = token
        self.allow_private = allow_private

    async def _get(self, path: str, **kwargs: Any) -> httpx.Response:
        extra = kwargs.pop("headers", {})  # once, outside send: the retry after a refresh sends them too

        async def send(token: str) -> httpx.Response:
            return await call(self.allow_private, "GET", f"{self.base}{path}",
                              headers={"Authorization": f"Bearer {token}", **extra}, **kwargs)
        return await authorised(self.token, send)

    async def fetch_order(self, order_ref: str) -> dict[str, Any]:
        """The order, or the whole pack it belongs to as one order (one purchase, one invoice, one fiscal
        document). ``order_ref`` may be a pack id (what a pack's row keeps)."""
        try:
            order = decode(await self._get(f"/orders/{order_ref}"))
        except PlatformError as exc:
            if exc.status != 404:
                raise
            return await self._pack(order_ref)
        return await self.complete(order)

    async def complete(self, order: dict[str, Any]) -> dict[str, Any]:
        if not order.get("pack_id") or "pack_orders" in order:
            return order
        return await self._pack(str(order["pack_id"]))

    async def _pack(self, pack_id: str) -> dict[str, Any]:
        try:
            pack = decode(await self._get(f"/packs/{pack_id}"))
        except PlatformError as exc:
            if exc.status == 404:
                raise OrderNotFound(pack_id) from None
            raise
        orders = [decode(await self._get(f"/orders/{o['id']}")) for o in pack.get("orders") or []]
        if not orders:
            raise OrderNotFound(pack_id)
        return merge_pack(orders)

    async def buyer_details(self, order: dict[str, Any]) -> dict[str, Any] | None:
        try:
            first = (order.get("pack_orders") or [order["id"]])[0]  # a pack's buyer is its orders' buyer
            r = await self._get(f"/orders/{first}/billing_info", headers={"x-version": "2"})
        except PlatformError as exc:
            if exc.status == 404:  # the buyer gave no fiscal data: a final consumer
                return None
            raise
        return decode(r)

    async def updated_since(self, cursor: str | None) -> AsyncIterator[list[dict[str, Any]]]:
        offset = 0
        while True:
            params = {"seller": self.seller, "sort": "date_asc", "offset": str(offset), "limit": str(PAGE)}
            if cursor:
                params["order.date_last_updated.from"] = cursor
            page = decode(await self._get("/orders/search", params=params))
            results = page.get("results") or []
            yield results
            offset += len(results)
            if not results or offset >= int((page.get("paging") or {}).get("total") or 0):
                return

    async def write_back(self, order: dict[str, Any], fiscal_number: str, verify_url: str,
                         pdf: Callable[[], Awaitable[bytes]]) -> Written:
        pack = order.get("pack_id") or order["id"]
        document = await pdf()
        if len(document) > MAX_PDF:
            raise PlatformError(f"the invoice PDF is {len(document)} bytes; Mercado Libre takes at most {MAX_PDF}",
                                code="fiscal_document_too_large")

        async def send(token: str) -> httpx.Response:
            return await call(self.allow_private, "POST", f"{self.base}/packs/{pack}/fiscal_documents",
                              headers={"Authorization": f"Bearer {token}"}, ok=(200, 201),
                              files={"fiscal_document": (f"{fiscal_number}.pdf", document, "application/pdf")})
        try:
            await authorised(self.token, send)
        except PlatformError as exc:
            if exc.status == 409:  # one document per pack: ours was uploaded by an earlier attempt
                return Written(["fiscal document (already there)"])
            raise
        return Written([f"fiscal document of pack {pack}"])
