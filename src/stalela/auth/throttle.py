"""Counters with a time window for login throttling, and token buckets for rate limits.

In memory by default (one process); in Redis when STALELA_REDIS_URL is set, so several API processes
share them. Redis operations are single round trips (INCR+EXPIRE pipeline; a Lua token bucket).

A bucket's numbers come with each take: the settings' defaults, a tenant's own limit (operator-set,
``tenants.rate_limit_*``), or the per-IP limit of the unauthenticated routes. A bucket whose numbers
change keeps its tokens, capped at the new burst.

When Redis is away the two degrade differently. Rate limits fall back to this process's own buckets:
they protect capacity, and a per-process bucket still bounds every process, while refusing would stop
invoicing over a cache. Login throttles refuse (503 ``cache_unavailable``): counted per process they
would allow N processes times the guesses and forget them when Redis returns, and a login can wait.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal

from stalela.config import Settings
from stalela.errors import CacheUnavailable
from stalela.observability.logging import get_logger

log = get_logger("stalela.throttle")

_BUCKET_LUA = """
local tokens_key, ts_key = KEYS[1], KEYS[2]
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tokens = tonumber(redis.call('GET', tokens_key) or burst)
local ts = tonumber(redis.call('GET', ts_key) or now)
tokens = math.min(burst, tokens + (now - ts) * rate)
local allowed = 0
if tokens >= 1 then tokens = tokens - 1; allowed = 1 end
local ttl = math.ceil(burst / rate) + 1
redis.call('SET', tokens_key, tokens, 'EX', ttl)
redis.call('SET', ts_key, now, 'EX', ttl)
return {allowed, tostring(tokens)}
"""

_PRUNE_FLOOR = 10_000  # in-process buckets kept before the refilled ones are forgotten


@dataclass
class Decision:
    allowed: bool
    remaining: int
    retry_after: float


class Limiter:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._redis = None
        self._counts: dict[str, tuple[int, float]] = {}
        # key -> (tokens, last take, when the bucket is full again)
        self._buckets: dict[str, tuple[float, float, float]] = {}
        self._prune_at = _PRUNE_FLOOR
        if settings.redis_url:
            import redis.asyncio as redis
            from redis.exceptions import RedisError

            self._redis = redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
            self._bucket = self._redis.register_script(_BUCKET_LUA)
            self._redis_error: type[Exception] = RedisError

    def _unavailable(self, exc: Exception) -> CacheUnavailable:
        retry = self.settings.unavailable_retry_after_seconds
        error = CacheUnavailable(f"login throttling is unavailable; retry in {retry} s", retry_after=retry)
        error.__cause__ = exc
        return error

    async def failures(self, key: str) -> int:
        if self._redis is not None:
            try:
                value = await self._redis.get(f"stalela:fail:{key}")
            except self._redis_error as exc:
                raise self._unavailable(exc) from exc
            return int(value or 0)
        count, expires = self._counts.get(key, (0, 0.0))
        return count if expires > time.monotonic() else 0

    async def fail(self, key: str) -> None:
        window = self.settings.login_window_seconds
        if self._redis is not None:
            pipe = self._redis.pipeline()
            pipe.incr(f"stalela:fail:{key}")
            pipe.expire(f"stalela:fail:{key}", window, nx=True)
            try:
                await pipe.execute()
            except self._redis_error as exc:
                raise self._unavailable(exc) from exc
            return
        count, expires = self._counts.get(key, (0, 0.0))
        now = time.monotonic()
        self._counts[key] = (count + 1, expires) if expires > now else (1, now + window)

    async def clear(self, key: str) -> None:
        if self._redis is not None:
            try:
                await self._redis.delete(f"stalela:fail:{key}")
            except self._redis_error as exc:
                raise self._unavailable(exc) from exc
        else:
            self._counts.pop(key, None)

    def limits(self, per_second: Decimal | None = None, burst: int | None = None) -> tuple[float, int]:
        """The effective refill rate and burst: a tenant's own numbers where set, else the defaults.

        The rate becomes a float here only for the bucket's arithmetic; what is stored stays Decimal."""
        return (float(per_second) if per_second is not None else self.settings.rate_limit_per_second,
                burst if burst is not None else self.settings.rate_limit_burst)

    async def take(self, key: str, rate: float | None = None, burst: int | None = None) -> Decision:
        rate = self.settings.rate_limit_per_second if rate is None else rate
        burst = self.settings.rate_limit_burst if burst is None else burst
        now = time.time()
        allowed = None
        if self._redis is not None:
            try:
                allowed, tokens = await self._bucket(keys=[f"stalela:tb:{key}", f"stalela:ts:{key}"],
                                                     args=[rate, burst, now])
                tokens = float(tokens)
            except self._redis_error as exc:
                log.warning("rate_limit_degraded", cause=f"{type(exc).__name__}: {exc}", fallback="process")
        if allowed is None:
            tokens, ts, _ = self._buckets.get(key, (float(burst), now, now))
            tokens = min(burst, tokens + (now - ts) * rate)
            allowed = tokens >= 1
            if allowed:
                tokens -= 1
            self._buckets[key] = (tokens, now, now + (burst - tokens) / rate)
            if len(self._buckets) > self._prune_at:
                self._prune(now)
        return Decision(bool(allowed), int(tokens), 0.0 if allowed else (1 - tokens) / rate)

    def _prune(self, now: float) -> None:
        """Forget the buckets that have refilled: one per client IP would otherwise grow without end.
        A full bucket and a missing one are the same bucket, so this changes no decision."""
        self._buckets = {k: v for k, v in self._buckets.items() if v[2] > now}
        self._prune_at = max(_PRUNE_FLOOR, 2 * len(self._buckets))

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
