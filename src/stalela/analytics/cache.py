"""A small in-process cache of analytics answers: per tenant and query, short-lived, bounded.

Why it is safe (docs/analytics.md, "Caching"): the key holds the tenant, the query with its resolved dates
and outlets, and the size of the tenant's Merkle log, which every seal (online or merged from a device)
grows. So a sum sealing keeps is never served stale: the next seal changes the key. What changes without a
seal (the authority's answers; an outlet renamed) is at most ``ttl`` seconds old. Buyers' names are never
cached (an erasure must show at once); only the sums are. Each process has its own cache: a miss costs one
query, not a wrong answer.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any, Callable, Hashable

MISSING = object()


class TtlCache:
    def __init__(self, ttl: float, size: int = 2048, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.size, self.clock = ttl, size, clock
        self._items: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return MISSING
            expires, value = found
            if expires <= self.clock():
                del self._items[key]
                return MISSING
            self._items.move_to_end(key)
            return value

    def put(self, key: Hashable, value: Any, ttl: float | None = None) -> None:
        with self._lock:
            self._items[key] = (self.clock() + (self.ttl if ttl is None else ttl), value)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
