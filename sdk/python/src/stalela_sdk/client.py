"""``Stalela`` (sync) and ``AsyncStalela`` (async): the same resources over one request layer (``_http``)."""
from __future__ import annotations

import asyncio
import os
import time
from typing import Any, AsyncIterator, Iterator, Mapping

import httpx

from stalela_sdk import _http
from stalela_sdk._http import Call, RetryPolicy
from stalela_sdk.resources import (ApiKeys, Devices, Invoices, Keys, Ledger, Offline, Outlets, Reports, Sync,
                                   Tenants, WebhookEndpoints)


class _Base:
    def __init__(self, api_key: str | None, base_url: str | None, retry: RetryPolicy | None,
                 default_headers: Mapping[str, str] | None) -> None:
        # The environment, as the CLI tools of other APIs do, so scripts need no secret in their text.
        self.api_key = api_key if api_key is not None else os.environ.get("STALELA_API_KEY")
        self.base_url = (base_url or os.environ.get("STALELA_BASE_URL") or _http.DEFAULT_BASE_URL).rstrip("/")
        self.retry = retry or RetryPolicy()
        self._headers = _http.default_headers(self.api_key, default_headers)
        self.invoices = Invoices(self)
        self.outlets = Outlets(self)
        self.api_keys = ApiKeys(self)
        self.reports = Reports(self)
        self.webhook_endpoints = WebhookEndpoints(self)
        self.ledger = Ledger(self)
        self.keys = Keys(self)
        self.devices = Devices(self)
        self.offline = Offline(self)
        self.tenants = Tenants(self)
        self.sync = Sync(self)

    @staticmethod
    def _call(method: str, url: str, **kw: Any) -> Call:
        return _http.build_call(method, url, **kw)

    # What the resources call (``resources.Requester``): the decoded answer, or an awaitable of it.
    def _request(self, method: str, url: str, **kw: Any) -> Any:
        raise NotImplementedError

    def _paginate(self, url: str, params: Mapping[str, Any] | None = None) -> Any:
        raise NotImplementedError


class Stalela(_Base):
    """The synchronous client. ``api_key``: a tenant API key, a user access token or the operator token.

    >>> client = Stalela(api_key="sk_...", base_url="https://fiscal.example.cd")
    >>> invoice = client.invoices.create({...})
    """

    def __init__(self, api_key: str | None = None, *, base_url: str | None = None,
                 timeout: float | httpx.Timeout = _http.DEFAULT_TIMEOUT, retry: RetryPolicy | None = None,
                 default_headers: Mapping[str, str] | None = None, http_client: httpx.Client | None = None) -> None:
        super().__init__(api_key, base_url, retry, default_headers)
        self._own_client = http_client is None
        self._http = http_client or httpx.Client(base_url=self.base_url, timeout=timeout, headers=self._headers)
        if not self._own_client:
            self._http.headers.update(self._headers)

    def _request(self, method: str, url: str, **kw: Any) -> Any:
        call = self._call(method, url, **kw)
        retry = 0
        while True:
            try:
                response = self._http.send(_http.to_request(self._http, call))
            except httpx.TransportError as exc:
                delay = _http.retry_delay(self.retry, call, retry, error=exc)
                if delay is None:
                    raise _http.connection_error(call, exc) from exc
            else:
                delay = _http.retry_delay(self.retry, call, retry, response=response)
                if delay is None:
                    return _http.result(call, response)
                response.close()
            time.sleep(delay)
            retry += 1

    def _paginate(self, url: str, params: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        params = dict(params or {})
        while True:
            page = self._request("GET", url, params=params)
            yield from page["data"]
            if not page.get("has_more") or not page["data"]:
                return
            params["starting_after"] = page["data"][-1]["id"]

    def close(self) -> None:
        if self._own_client:
            self._http.close()

    def __enter__(self) -> "Stalela":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncStalela(_Base):
    """The asyncio client: the same resources, each method awaited; ``list_all`` is an async iterator."""

    def __init__(self, api_key: str | None = None, *, base_url: str | None = None,
                 timeout: float | httpx.Timeout = _http.DEFAULT_TIMEOUT, retry: RetryPolicy | None = None,
                 default_headers: Mapping[str, str] | None = None,
                 http_client: httpx.AsyncClient | None = None) -> None:
        super().__init__(api_key, base_url, retry, default_headers)
        self._own_client = http_client is None
        self._http = http_client or httpx.AsyncClient(base_url=self.base_url, timeout=timeout, headers=self._headers)
        if not self._own_client:
            self._http.headers.update(self._headers)

    async def _request(self, method: str, url: str, **kw: Any) -> Any:
        call = self._call(method, url, **kw)
        retry = 0
        while True:
            try:
                response = await self._http.send(_http.to_request(self._http, call))
            except httpx.TransportError as exc:
                delay = _http.retry_delay(self.retry, call, retry, error=exc)
                if delay is None:
                    raise _http.connection_error(call, exc) from exc
            else:
                delay = _http.retry_delay(self.retry, call, retry, response=response)
                if delay is None:
                    return _http.result(call, response)
                await response.aclose()
            await asyncio.sleep(delay)
            retry += 1

    async def _paginate(self, url: str, params: Mapping[str, Any] | None = None) -> AsyncIterator[dict[str, Any]]:
        params = dict(params or {})
        while True:
            page = await self._request("GET", url, params=params)
            for item in page["data"]:
                yield item
            if not page.get("has_more") or not page["data"]:
                return
            params["starting_after"] = page["data"][-1]["id"]

    async def aclose(self) -> None:
        if self._own_client:
            await self._http.aclose()

    async def __aenter__(self) -> "AsyncStalela":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
