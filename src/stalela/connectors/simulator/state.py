"""The simulator's memory: orders and their versions, subscriptions, credentials, the delivery log.

One ``Store`` per simulated shop, guarded by one lock. Orders are kept in the platform's own JSON
shape (what the API answers); every change appends a deep copy to the order's versions, which is
what a ``stale`` delivery sends instead of the current one.
"""
from __future__ import annotations

import copy
import itertools
import secrets
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal


class Clock:
    """Wall-clock time plus an offset that ``POST /_sim/clock`` moves forward (token expiry)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@dataclass
class Subscription:
    id: int
    address: str
    secret: str | None
    topics: tuple[str, ...]
    created_at: datetime
    name: str = ""
    status: str = "active"  # active | paused | disabled (WooCommerce) | deleted (Shopify)
    failure_count: int = 0  # consecutive failed deliveries

    def wants(self, topic: str) -> bool:
        return self.status == "active" and topic in self.topics

    def view(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "address": self.address,
                "topics": list(self.topics), "status": self.status,
                "failure_count": self.failure_count, "signed": self.secret is not None}


@dataclass
class AccessToken:
    token: str
    subject: int | str  # Mercado Libre user id, Tienda Nube store id, Shopify shop, Woo key
    issued_at: datetime
    ttl_s: float | None = None  # None: never expires
    secret: str | None = None  # WooCommerce: the consumer secret that goes with the key


@dataclass
class RefreshToken:
    token: str
    client_id: str
    subject: int
    alive: bool = True


@dataclass
class AuthCode:
    code: str
    client_id: str
    subject: int | str
    used: bool = False


TokenCheck = Literal["ok", "unknown", "expired"]


@dataclass
class Store:
    clock: Clock = field(default_factory=Clock)
    lock: threading.RLock = field(default_factory=threading.RLock)
    orders: dict[int, dict] = field(default_factory=dict)
    versions: dict[int, list[dict]] = field(default_factory=dict)
    created: dict[int, datetime] = field(default_factory=dict)
    updated: dict[int, datetime] = field(default_factory=dict)
    extras: dict[int, dict] = field(default_factory=lambda: defaultdict(dict))  # not in ORDER
    subscriptions: dict[int, Subscription] = field(default_factory=dict)
    deliveries: list[dict] = field(default_factory=list)
    tokens: dict[str, AccessToken] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshToken] = field(default_factory=dict)
    codes: dict[str, AuthCode] = field(default_factory=dict)
    _counters: dict[str, itertools.count] = field(default_factory=dict)

    def next_id(self, kind: str, start: int = 1) -> int:
        with self.lock:
            counter = self._counters.setdefault(kind, itertools.count(start))
            return next(counter)

    # ---------------------------------------------------------------------------- orders

    def save(self, order: dict, *, created: datetime | None = None,
             updated: datetime | None = None) -> dict:
        """Store ``order`` (keyed by its ``id``) as its newest version; returns a copy of it."""
        with self.lock:
            order_id = int(order["id"])
            if created is not None:
                self.created[order_id] = created
            if updated is not None:
                self.updated[order_id] = updated
            self.orders[order_id] = order
            self.versions.setdefault(order_id, []).append(copy.deepcopy(order))
            return copy.deepcopy(order)

    def get(self, order_id: int) -> dict | None:
        with self.lock:
            order = self.orders.get(order_id)
            return copy.deepcopy(order) if order is not None else None

    def previous(self, order_id: int) -> dict | None:
        """The version before the newest one, if the order has changed since it was created."""
        with self.lock:
            versions = self.versions.get(order_id) or []
            return copy.deepcopy(versions[-2]) if len(versions) > 1 else None

    def sorted_ids(self) -> list[int]:
        """Every order id by (updated, id), the key every listing starts from."""
        with self.lock:
            return sorted(self.orders, key=lambda i: (self.updated[i], i))

    # ---------------------------------------------------------------------------- delivery log

    def log(self, entry: dict) -> None:
        with self.lock:
            entry["seq"] = len(self.deliveries) + 1
            self.deliveries.append(entry)

    # ---------------------------------------------------------------------------- credentials

    def issue_token(self, subject: int | str, *, prefix: str = "", ttl_s: float | None = None,
                    token: str | None = None, secret: str | None = None) -> AccessToken:
        with self.lock:
            issued = AccessToken(token or prefix + secrets.token_hex(20), subject,
                                 self.clock.now(), ttl_s, secret)
            self.tokens[issued.token] = issued
            return issued

    def check_token(self, token: str, ttl_override: float | None = None
                    ) -> tuple[TokenCheck, AccessToken | None]:
        """``ttl_override`` (the ``token_ttl_s`` fault) shortens every token's life, old too."""
        with self.lock:
            found = self.tokens.get(token)
        if found is None:
            return "unknown", None
        ttl = found.ttl_s if ttl_override is None else ttl_override
        if ttl is not None and self.clock.now() >= found.issued_at + timedelta(seconds=ttl):
            return "expired", found
        return "ok", found

    def issue_refresh(self, client_id: str, subject: int, prefix: str = "TG-") -> RefreshToken:
        with self.lock:
            issued = RefreshToken(f"{prefix}{secrets.token_hex(12)}-{subject}", client_id, subject)
            self.refresh_tokens[issued.token] = issued
            return issued

    def use_refresh(self, token: str, client_id: str) -> RefreshToken | None:
        """Kill ``token`` and return it, or None if it is unknown, dead or another client's.

        Atomic: of two concurrent refreshes with one token, exactly one wins.
        """
        with self.lock:
            found = self.refresh_tokens.get(token)
            if found is None or not found.alive or found.client_id != client_id:
                return None
            found.alive = False
            return found

    def issue_code(self, client_id: str, subject: int | str) -> str:
        with self.lock:
            code = secrets.token_hex(16)
            self.codes[code] = AuthCode(code, client_id, subject)
            return code

    def use_code(self, code: str, client_id: str) -> AuthCode | None:
        with self.lock:
            found = self.codes.get(code)
            if found is None or found.used or found.client_id != client_id:
                return None
            found.used = True
            return found
