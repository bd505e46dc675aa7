"""A running marketplace simulator driven over HTTP, and signatures recomputed independently."""
from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from stalela.connectors.simulator import MarketplaceSimulator

SECRET = "shpss_test-secret"


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def hmac_base64(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def hmac_hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class Shop:
    server: MarketplaceSimulator
    control: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.control = httpx.Client(base_url=self.server.url, timeout=10)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def credentials(self) -> dict:
        return self.server.sim.default_credentials

    def api(self, headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=headers or {}, timeout=10, **kwargs)

    def _ok(self, response: httpx.Response) -> Any:
        assert response.status_code < 300, response.text
        return response.json() if response.content else None

    def order(self, **fields: Any) -> dict:
        return self._ok(self.control.post("/_sim/orders", json=fields))

    def pay(self, order_id: int) -> dict:
        return self._ok(self.control.post(f"/_sim/orders/{order_id}/pay"))

    def refund(self, order_id: int) -> dict:
        return self._ok(self.control.post(f"/_sim/orders/{order_id}/refund"))

    def patch(self, order_id: int, **fields: Any) -> dict:
        return self._ok(self.control.patch(f"/_sim/orders/{order_id}", json=fields))

    def inspect(self, order_id: int) -> dict:
        return self._ok(self.control.get(f"/_sim/orders/{order_id}"))

    def subscribe(self, address: str, **body: Any) -> dict:
        return self._ok(self.control.post("/_sim/webhooks", json={"address": address, **body}))

    def faults(self, **spec: Any) -> dict:
        return self._ok(self.control.post("/_sim/faults", json=spec))

    def deliveries(self, **filters: Any) -> list[dict]:
        return self._ok(self.control.get("/_sim/deliveries", params=filters))

    def settle(self, timeout: float = 10.0) -> None:
        """Wait until no delivery is in flight (held ones wait for a flush and do not count)."""
        wait_until(lambda: self._ok(self.control.get("/_sim/status"))["pending"] == 0, timeout,
                   "the deliveries to settle")

    def close(self) -> None:
        self.control.close()
        self.server.stop()
