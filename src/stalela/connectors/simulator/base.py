"""What every simulated platform is made of, and the simulator object that ties one to its store.

A ``Platform`` subclass (``shopify.py``, ...) says how its orders look and change, which events a
change raises, how a delivery is signed and retried, and serves the platform's API routes. The
``Simulator`` holds the store, the faults and the delivery dispatcher; ``control.py`` drives it.
"""
from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from fastapi import APIRouter

from .common import SimError
from .faults import FaultInjector
from .state import AuthCode, Store, Subscription

if TYPE_CHECKING:
    from .deliveries import Dispatcher, Job


@dataclass
class Options:
    secret: str  # the app's client secret (signs Shopify and Tienda Nube webhooks, Woo's default)
    time_scale: float = 1.0  # retry delays are divided by it
    retry_delays_s: tuple[float, ...] | None = None  # None: the platform's schedule
    delivery_timeout_s: float | None = None  # None: the platform's deadline
    disable_after: int = 5  # WooCommerce: consecutive failures before a webhook is disabled
    # Shopify: a delivery that exhausts its retries removes the subscription.
    delete_after_exhausted: bool = True
    token_ttl_s: float | None = None  # Mercado Libre access tokens (production: 21600)


@dataclass
class Event:
    id: str
    topic: str
    order_id: int | None
    payload: dict
    older: dict | None  # the payload as of the previous version of the order (``stale``)
    at: datetime


@dataclass
class Change:
    """What a change to an order raises: topics, each optionally with its own body (a refund)."""
    topics: list[tuple[str, dict | None]] = field(default_factory=list)

    def add(self, topic: str, body: dict | None = None) -> Change:
        self.topics.append((topic, body))
        return self


class Platform:
    name: ClassVar[str]
    full_body: ClassVar[bool]  # the webhook body is the order itself (Shopify, WooCommerce)
    topics: ClassVar[tuple[str, ...]]
    retry_delays_s: ClassVar[tuple[float, ...]] = ()
    timeout_s: ClassVar[float] = 5.0
    connect_timeout_s: ClassVar[float] = 1.0
    default_port: ClassVar[int]
    resolution_us: ClassVar[int] = 1_000_000  # the platform's timestamps: whole seconds
    # Order fields recomputed after a PATCH unless the PATCH sets them.
    computed: ClassVar[frozenset[str]] = frozenset()
    updated_fields: ClassVar[tuple[str, ...]] = ("updated_at",)  # bumped by every change

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    @property
    def store(self) -> Store:
        return self.sim.store

    # -------------------------------------------------------------- orders (platform shape)

    def build(self, partial: dict, now: datetime) -> dict:
        """A complete new ORDER from a partial one: ids, defaults, totals."""
        raise NotImplementedError

    first_order_id: ClassVar[int]
    utc_format: ClassVar[str | None] = None  # strftime of the platform's UTC timestamps, if UTC

    def time(self, moment: datetime) -> str:
        """A timestamp the way the platform writes it."""
        if self.utc_format is None:
            raise NotImplementedError
        return moment.astimezone(UTC).strftime(self.utc_format)

    def new_order(self, partial: dict) -> dict:
        """A copy of ``partial`` with its id: the one given, or the next."""
        o = copy.deepcopy(partial)
        o["id"] = int(o.get("id") or self.store.next_id("order", self.first_order_id))
        return o

    def stamp(self, order: dict, now: datetime) -> None:
        for name in self.updated_fields:
            order[name] = self.time(now)

    @staticmethod
    def require(order: dict, field: str, allowed: tuple[str, ...], action: str) -> None:
        """A payment or refund the order's state does not allow is refused (409 on /_sim)."""
        if order[field] not in allowed:
            raise ValueError(f"order is {order[field]}, not {action}")

    def created(self, order: dict) -> Change:
        raise NotImplementedError

    def pay(self, order: dict, now: datetime) -> Change:
        raise NotImplementedError

    def refund(self, order: dict, now: datetime) -> Change:
        raise NotImplementedError

    def patched(self, before: dict, after: dict) -> Change:
        raise NotImplementedError

    def inspect(self, order: dict) -> dict:
        """``GET /_sim/orders/{id}``: the ORDER plus whatever write-back it received."""
        return order

    # -------------------------------------------------------------- webhooks

    def payload(self, topic: str, order: dict) -> dict:
        """The body of a delivery about ``order`` (the order itself, or a pointer to it)."""
        raise NotImplementedError

    def request(self, job: Job, attempt: int) -> tuple[dict[str, str], bytes]:
        """Headers and the exact body bytes of one attempt."""
        raise NotImplementedError

    def success(self, status: int) -> bool:
        return 200 <= status < 300

    def after_attempt(self, sub: Subscription, ok: bool) -> None:
        """Bookkeeping after each attempt (WooCommerce counts failures)."""

    def exhausted(self, sub: Subscription) -> None:
        """Every attempt of one delivery failed."""

    def subscribed(self, sub: Subscription) -> None:
        """A subscription was created (WooCommerce pings it)."""

    def signing_secret(self, requested: str | None) -> str | None:
        return requested or self.sim.options.secret

    def redeem_code(self, body: dict, client_id: str, refused: tuple[str, str]) -> AuthCode:
        """An OAuth authorization code exchanged once for a token (Shopify, Tienda Nube);
        ``refused`` is the platform's (error, error_description) for a bad or used code."""
        secret = self.sim.options.secret
        if body.get("client_id") != client_id or body.get("client_secret") != secret:
            raise SimError(400, {"error": "invalid_client",
                                 "error_description": "The client credentials are invalid"})
        grant = self.store.use_code(str(body.get("code", "")), client_id)
        if grant is None:
            raise SimError(400, {"error": refused[0], "error_description": refused[1]})
        return grant

    # -------------------------------------------------------------- API

    def router(self) -> APIRouter:
        raise NotImplementedError

    def error(self, status: int, message: str) -> SimError:
        """An error in the platform's own shape."""
        raise NotImplementedError

    def credentials(self, body: dict) -> dict:
        """``POST /_sim/tokens``: fresh credentials for the platform's API."""
        raise NotImplementedError


class Simulator:
    def __init__(self, platform_class: type[Platform], options: Options,
                 faults: FaultInjector) -> None:
        from .deliveries import Dispatcher  # the dispatcher needs the simulator; built last

        self.options = options
        self.faults = faults
        self.store = Store()
        self.public_url = "http://127.0.0.1/"  # replaced by the URL the first request came to
        self.platform = platform_class(self)
        self.dispatcher: Dispatcher = Dispatcher(self)
        self.default_credentials = self.platform.credentials({})

    # -------------------------------------------------------------- order lifecycle

    def now(self) -> datetime:
        """The clock at the platform's resolution, so that filters see what clients see."""
        moment = self.store.clock.now()
        step = self.platform.resolution_us
        return moment.replace(microsecond=moment.microsecond // step * step)

    def create_order(self, partial: dict) -> dict:
        now = self.now()
        if partial.get("id") is not None and self.store.get(int(partial["id"])) is not None:
            raise ValueError(f"order {partial['id']} exists")
        with self.store.lock:
            order = self.platform.build(partial, now)
            saved = self.store.save(order, created=now, updated=now)
            change = self.platform.created(saved)
        self.raise_events(saved["id"], change, now)
        return saved

    def change_order(self, order_id: int, action: str, fields: dict | None = None) -> dict:
        now = self.now()
        with self.store.lock:
            before = self.store.get(order_id)
            if before is None:
                raise KeyError(order_id)
            after = copy.deepcopy(before)
            if action == "pay":
                change = self.platform.pay(after, now)
            elif action == "refund":
                change = self.platform.refund(after, now)
            else:
                base = {k: v for k, v in after.items() if k not in self.platform.computed}
                base.update(fields or {})
                after = self.platform.build({**base, "id": before["id"]}, now)
                change = self.platform.patched(before, after)
            self.platform.stamp(after, now)
            saved = self.store.save(after, updated=now)
        self.raise_events(order_id, change, now)
        return saved

    def touch_order(self, order_id: int, mutate: Any, *, emit: str | None = None) -> dict:
        """A write-back through the platform's API: ``mutate(order)`` returns whether it changed
        anything; only a real change bumps the modification time and raises ``emit``."""
        now = self.now()
        with self.store.lock:
            order = self.store.get(order_id)
            if order is None:
                raise KeyError(order_id)
            if not mutate(order):
                return order
            self.platform.stamp(order, now)
            saved = self.store.save(order, updated=now)
        if emit:
            self.raise_events(order_id, Change().add(emit), now)
        return saved

    def raise_events(self, order_id: int, change: Change, now: datetime) -> None:
        current = self.store.get(order_id)
        older = self.store.previous(order_id)
        events = []
        for topic, body in change.topics:
            payload = body if body is not None else self.platform.payload(topic, current)
            stale = None
            if body is None and older is not None and self.platform.full_body:
                stale = self.platform.payload(topic, older)
            events.append(Event(str(uuid.uuid4()), topic, order_id, payload, stale, now))
        self.dispatcher.emit(events)

    # -------------------------------------------------------------- subscriptions

    def subscribe(self, address: str, secret: str | None, topics: list[str] | None,
                  name: str = "") -> Subscription:
        unknown = sorted(set(topics or ()) - set(self.platform.topics))
        if unknown:
            raise ValueError(f"unknown topics for {self.platform.name}: {', '.join(unknown)}")
        sub = Subscription(self.store.next_id("subscription"), address,
                           self.platform.signing_secret(secret),
                           tuple(topics or self.platform.topics), self.store.clock.now(), name)
        with self.store.lock:
            self.store.subscriptions[sub.id] = sub
        self.platform.subscribed(sub)
        return sub
