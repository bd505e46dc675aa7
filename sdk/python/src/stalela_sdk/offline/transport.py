"""The few HTTP calls the offline sealer makes, with safe retries.

Every call here may be repeated: a challenge is a fresh nonce, a batch or a block return replayed gets
the cloud's first answer again (docs/offline.md), so a lost answer is retried with the same body
rather than guessed at. Credential issuance is not blindly retried (it allocates numbers): it is sent
with an Idempotency-Key that the retries reuse.
"""
from __future__ import annotations

import random
import time
import uuid
from typing import Any

import httpx

from stalela_sdk.offline.errors import ForkDetected, UploadFailed

RETRY_STATUSES = frozenset({429, 502, 503, 504})


class Transport:
    def __init__(self, base_url: str, api_key: str | None, *, client: httpx.Client | None = None,
                 timeout: float = 60.0, retries: int = 6, backoff: float = 0.25, max_backoff: float = 8.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = client or httpx.Client(base_url=self.base_url, timeout=timeout)
        self._owned = client is None
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.retries, self.backoff, self.max_backoff = retries, backoff, max_backoff

    def close(self) -> None:
        if self._owned:
            self._client.close()

    def request(self, method: str, path: str, *, json: Any = None, idempotent_key: bool = False,
                auth: bool = True) -> dict[str, Any]:
        headers = dict(self._headers) if auth else {}
        if idempotent_key:
            headers["Idempotency-Key"] = str(uuid.uuid4())  # one per call, the same for its retries
        attempt = 0
        while True:
            try:
                response = self._client.request(method, self.base_url + path, json=json, headers=headers)
            except httpx.TransportError:
                if attempt >= self.retries:
                    raise
            else:
                if response.status_code not in RETRY_STATUSES or attempt >= self.retries:
                    return _answer(response)
                retry_after = _retry_after(response)
                if retry_after is not None:
                    time.sleep(min(retry_after, self.max_backoff))
                    attempt += 1
                    continue
            time.sleep(min(self.max_backoff, self.backoff * 2 ** attempt) * (0.5 + random.random() / 2))
            attempt += 1


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


def _answer(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = {"detail": response.text[:500]}
    if response.is_success:
        return body
    code = body.get("code") if isinstance(body, dict) else None
    detail = (body.get("detail") or body.get("title")) if isinstance(body, dict) else None
    # Both are the device equivocating: a number used twice, or used after the device returned it.
    error = (ForkDetected if response.status_code == 409 and code in ("offline_number_reused", "offline_number_returned")
             else UploadFailed)
    raise error(f"{response.request.method} {response.request.url.path}: {response.status_code} {detail or ''}".strip(),
                code=code or f"http_{response.status_code}", field=body.get("field") if isinstance(body, dict) else None,
                answer=body if isinstance(body, dict) else None)
