"""Counters with a time window for login throttling, and token buckets for rate limits.

In memory by default (one process); in Redis when STALELA_REDIS_URL is set, so several API processes
share them. Redis operations are single round trips (INCR+EXPIRE pipeline; a Lua token bucket).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from stalela.config import Settings

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
        self._buckets: dict[str, tuple[float, float]] = {}
        if settings.redis_url:
            import redis.asyncio as redis

            self._redis = redis.from_url(settings.redis_url)
            self._bucket = self._redis.register_script(_BUCKET_LUA)

    async def failures(self, key: str) -> int:
        if self._redis is not None:
            value = await self._redis.get(f"stalela:fail:{key}")
            return int(value or 0)
        count, expires = self._counts.get(key, (0, 0.0))
        return count if expires > time.monotonic() else 0

    async def fail(self, key: str) -> None:
        window = self.settings.login_window_seconds
        if self._redis is not None:
            pipe = self._redis.pipeline()
            pipe.incr(f"stalela:fail:{key}")
            pipe.expire(f"stalela:fail:{key}", window, nx=True)
            await pipe.execute()
            return
        count, expires = self._counts.get(key, (0, 0.0))
        now = time.monotonic()
        self._counts[key] = (count + 1, expires) if expires > now else (1, now + window)

    async def clear(self, key: str) -> None:
        if self._redis is not None:
            await self._redis.delete(f"stalela:fail:{key}")
        else:
            self._counts.pop(key, None)

    async def take(self, key: str) -> Decision:
        rate, burst = self.settings.rate_limit_per_second, self.settings.rate_limit_burst
        now = time.time()
        if self._redis is not None:
            allowed, tokens = await self._bucket(keys=[f"stalela:tb:{key}", f"stalela:ts:{key}"],
                                                 args=[rate, burst, now])
            tokens = float(tokens)
        else:
            tokens, ts = self._buckets.get(key, (float(burst), now))
            tokens = min(burst, tokens + (now - ts) * rate)
            allowed = tokens >= 1
            if allowed:
                tokens -= 1
            self._buckets[key] = (tokens, now)
        return Decision(bool(allowed), int(tokens), 0.0 if allowed else (1 - tokens) / rate)

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
