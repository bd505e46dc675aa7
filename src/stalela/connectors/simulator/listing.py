"""The four ways the platforms page through orders, each with its own edge behaviour.

- Shopify: keyset cursors in ``Link`` headers (``page_info``, which may not be combined with
  filters), ``updated_at_min`` inclusive, ``status`` open by default.
- Mercado Libre: ``offset``/``limit`` (limit at most 51), ``sort=date_asc`` orders by *creation*
  date while the filter is on ``date_last_updated``.
- Tienda Nube: ``page``/``per_page`` (at most 200); a page past the last answers 404
  "Last page is N".
- WooCommerce: ``page``/``per_page`` (1 to 100), ``X-WP-Total``/``X-WP-TotalPages``,
  ``modified_after`` exclusive at one-second resolution.

Times are compared at the platform's own resolution (the store keeps them truncated to it).
"""
from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import JSONResponse

from .common import SimError, parse_time

if TYPE_CHECKING:
    from .base import Platform

SHOPIFY_FILTERS = ("status", "financial_status", "updated_at_min", "updated_at_max",
                   "created_at_min", "created_at_max", "order")


def _int(value: str | None, default: int, fail: Callable[[], SimError]) -> int:
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise fail() from None


def _time(value: str, fail: Callable[[], SimError]) -> datetime:
    try:
        return parse_time(value)
    except ValueError:
        raise fail() from None


def _url(request: Request, **params: Any) -> str:
    return f"{str(request.base_url).rstrip('/')}{request.url.path}?{urlencode(params)}"


def _links(parts: list[tuple[str, str]]) -> dict[str, str]:
    return {"Link": ", ".join(f'<{url}>; rel="{rel}"' for rel, url in parts)} if parts else {}


# ------------------------------------------------------------------------------------ Shopify


def _encode_cursor(filters: dict, key: tuple[datetime, int], direction: str) -> str:
    raw = json.dumps({"f": filters, "k": [key[0].isoformat(), key[1]], "d": direction})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(text: str) -> tuple[dict, tuple[datetime, int], str]:
    raw = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    return raw["f"], (datetime.fromisoformat(raw["k"][0]), int(raw["k"][1])), raw["d"]


def _shopify_match(platform: Platform, order_id: int, f: dict) -> bool:
    store, order = platform.store, platform.store.orders[order_id]
    status = f.get("status", "open")
    if status == "open" and (order.get("closed_at") or order.get("cancelled_at")):
        return False
    if status == "closed" and not order.get("closed_at"):
        return False
    if status == "cancelled" and not order.get("cancelled_at"):
        return False
    wanted = f.get("financial_status", "any")
    if wanted != "any" and order["financial_status"] not in wanted.split(","):
        return False
    bounds = (("updated_at_min", store.updated, 1), ("updated_at_max", store.updated, -1),
              ("created_at_min", store.created, 1), ("created_at_max", store.created, -1))
    for name, times, sign in bounds:
        if name in f:
            moment = parse_time(f[name])
            if (times[order_id] < moment) if sign > 0 else (times[order_id] > moment):
                return False
    return True


def shopify_page(platform: Platform, request: Request) -> JSONResponse:
    params = dict(request.query_params)

    def bad(field: str, message: str) -> Callable[[], SimError]:
        return lambda: SimError(400, {"errors": {field: [message]}})

    limit = max(1, min(250, _int(params.get("limit"), 50, bad("limit", "is not a number"))))
    page_info = params.pop("page_info", None)
    key: tuple[datetime, int] | None = None
    direction = "next"
    if page_info is not None:
        extra = sorted(set(params) - {"limit", "fields"})
        if extra:
            raise SimError(400, {"errors": {"page_info": [
                f"cannot be combined with {', '.join(extra)} (only limit and fields)"]}})
        try:
            filters, key, direction = _decode_cursor(page_info)
        except (ValueError, KeyError, TypeError, IndexError):
            raise SimError(400, {"errors": "page_info - Invalid value."}) from None
    else:
        filters = {k: params[k] for k in SHOPIFY_FILTERS if k in params}
        if filters.get("order", "updated_at asc") != "updated_at asc":
            raise SimError(400, {"errors": {"order": ["the simulator sorts by updated_at asc"]}})
        for name in ("updated_at_min", "updated_at_max", "created_at_min", "created_at_max"):
            if name in filters:
                _time(filters[name], bad(name, "is not a valid date"))
    store = platform.store
    with store.lock:
        ids = [i for i in store.sorted_ids() if _shopify_match(platform, i, filters)]
        keyed = [((store.updated[i], i), i) for i in ids]
        if key is None:
            page = keyed[:limit]
        elif direction == "next":
            page = [p for p in keyed if p[0] > key][:limit]
        else:
            page = [p for p in keyed if p[0] < key][-limit:]
        orders = [store.get(i) for _, i in page]
    links = []
    if page:
        first, last = page[0][0], page[-1][0]
        if any(k < first for k, _ in keyed):
            links.append(("previous", _url(request, page_info=_encode_cursor(
                filters, first, "prev"), limit=limit)))
        if any(k > last for k, _ in keyed):
            links.append(("next", _url(request, page_info=_encode_cursor(
                filters, last, "next"), limit=limit)))
    return JSONResponse({"orders": orders}, headers=_links(links))


# ------------------------------------------------------------------------------------ Mercado Libre


def mercadolibre_search(platform: Platform, request: Request, user_id: int) -> dict:
    params = dict(request.query_params)

    def bad(message: str) -> Callable[[], SimError]:
        return lambda: platform.error(400, message)

    seller = params.get("seller")
    if seller is None:
        raise bad("seller or buyer is required")()
    if seller != str(user_id):
        raise platform.error(403, "caller.id does not match the seller")
    limit = _int(params.get("limit"), 51, bad("Invalid limit"))
    offset = _int(params.get("offset"), 0, bad("Invalid offset"))
    if not 0 < limit <= 51:
        raise bad("Limit must be a lower or equal than 51.")()
    if offset < 0:
        raise bad("Invalid offset")()
    sort = params.get("sort", "date_asc")
    if sort not in ("date_asc", "date_desc"):
        raise bad(f"Invalid sort: {sort}")()
    bounds = []
    for name, field in (("order.date_last_updated", "updated"), ("order.date_created", "created")):
        for edge, sign in (("from", 1), ("to", -1)):
            if f"{name}.{edge}" in params:
                bounds.append((field, sign, _time(params[f"{name}.{edge}"],
                                                  bad(f"Invalid {name}.{edge}"))))
    status = params.get("order.status")
    store = platform.store
    with store.lock:
        def keep(i: int) -> bool:
            order = store.orders[i]
            if order["seller"]["id"] != user_id or (status and order["status"] != status):
                return False
            for field, sign, moment in bounds:
                value = (store.updated if field == "updated" else store.created)[i]
                if (value < moment) if sign > 0 else (value > moment):
                    return False
            return True

        ids = sorted((i for i in store.orders if keep(i)), key=lambda i: (store.created[i], i),
                     reverse=sort == "date_desc")
        results = [store.get(i) for i in ids[offset:offset + limit]]
    names = {"date_asc": "Date ascending", "date_desc": "Date descending"}
    return {"query": None, "display": "complete", "results": results,
            "sort": {"id": sort, "name": names[sort]},
            "available_sorts": [{"id": k, "name": v} for k, v in names.items() if k != sort],
            "filters": [], "available_filters": [],
            "paging": {"total": len(ids), "offset": offset, "limit": limit}}


# ------------------------------------------------------------------------------------ page-numbered


def _window(platform: Platform, keep: Callable[[int], bool], page: int, per_page: int,
            key: Callable[[int], Any], reverse: bool = False) -> tuple[list[dict], int]:
    store = platform.store
    with store.lock:
        ids = sorted((i for i in store.orders if keep(i)), key=key, reverse=reverse)
        start = (page - 1) * per_page
        return [store.get(i) for i in ids[start:start + per_page]], len(ids)


def tiendanube_page(platform: Platform, request: Request, store_id: int) -> JSONResponse:
    params = dict(request.query_params)

    def bad(message: str) -> Callable[[], SimError]:
        return lambda: SimError(422, {"code": 422, "message": "Unprocessable Entity",
                                      "description": message})

    page = _int(params.get("page"), 1, bad("page must be an integer"))
    per_page = _int(params.get("per_page"), 30, bad("per_page must be an integer"))
    per_page = max(1, min(200, per_page))
    if page < 1:
        raise bad("page must be at least 1")()
    store = platform.store
    bounds = [(name, _time(params[name], bad(f"{name} is not a valid date")))
              for name in ("updated_at_min", "updated_at_max", "created_at_min", "created_at_max")
              if name in params]
    status, payment = params.get("status", "any"), params.get("payment_status", "any")

    def keep(i: int) -> bool:
        order = store.orders[i]
        if order["store_id"] != store_id:
            return False
        if status != "any" and order["status"] != status:
            return False
        if payment != "any" and order["payment_status"] != payment:
            return False
        for name, moment in bounds:
            value = (store.updated if name.startswith("updated") else store.created)[i]
            if (value < moment) if name.endswith("min") else (value > moment):
                return False
        return True

    orders, count = _window(platform, keep, page, per_page, lambda i: (store.updated[i], i))
    last = math.ceil(count / per_page)
    if page > last:
        raise SimError(404, {"code": 404, "message": "Not Found",
                             "description": f"Last page is {last}"})
    carried = {k: v for k, v in params.items() if k not in ("page", "per_page")}
    links = [(rel, _url(request, **carried, page=n, per_page=per_page))
             for rel, n in (("prev", page - 1), ("next", page + 1)) if 1 <= n <= last]
    links.append(("last", _url(request, **carried, page=last, per_page=per_page)))
    return JSONResponse(orders, headers={"x-total-count": str(count), **_links(links)})


def woocommerce_page(platform: Platform, request: Request) -> JSONResponse:
    params = dict(request.query_params)

    def bad(name: str, message: str) -> Callable[[], SimError]:
        return lambda: SimError(400, {"code": "rest_invalid_param",
                                      "message": f"Invalid parameter(s): {name}",
                                      "data": {"status": 400, "params": {name: message}}})

    page = _int(params.get("page"), 1, bad("page", "page is not of type integer."))
    per_page = _int(params.get("per_page"), 10, bad("per_page", "per_page is not of type integer."))
    if not 1 <= per_page <= 100:
        raise bad("per_page", "per_page must be between 1 (inclusive) and 100 (inclusive)")()
    if page < 1:
        raise bad("page", "page must be greater than or equal to 1")()
    orderby, order = params.get("orderby", "date"), params.get("order", "desc")
    if orderby not in ("date", "id", "modified") or order not in ("asc", "desc"):
        raise bad("orderby", "orderby is not one of date, id, modified (simulator).")()
    store = platform.store
    # Exclusive bounds, like WordPress' date queries ("after" / "before").
    bounds = [(name, _time(params[name], bad(name, "Invalid date.")))
              for name in ("modified_after", "modified_before", "after", "before")
              if name in params]
    statuses = params.get("status", "any").split(",")

    def keep(i: int) -> bool:
        if "any" not in statuses and store.orders[i]["status"] not in statuses:
            return False
        for name, moment in bounds:
            value = (store.updated if name.startswith("modified") else store.created)[i]
            if (value <= moment) if name.endswith("after") else (value >= moment):
                return False
        return True

    def key(i: int) -> Any:
        if orderby == "id":
            return (i,)
        return ((store.created if orderby == "date" else store.updated)[i], i)

    orders, count = _window(platform, keep, page, per_page, key, reverse=order == "desc")
    pages = math.ceil(count / per_page)
    carried = {k: v for k, v in params.items() if k != "page"}
    links = [(rel, _url(request, **carried, page=n))
             for rel, n in (("prev", page - 1), ("next", page + 1)) if 1 <= n <= pages]
    return JSONResponse(orders, headers={"X-WP-Total": str(count), "X-WP-TotalPages": str(pages),
                                         **_links(links)})
