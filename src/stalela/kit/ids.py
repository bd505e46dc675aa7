"""Identifiers: a type prefix plus a time-ordered, 128-bit, Crockford base32 ULID.

Time order makes ``id`` usable as the cursor of every list (newest first) without a second index.
Written here rather than taken from a ULID package: it is twenty lines and must be monotonic within a
process, which the common packages do not promise.
"""
from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_lock = threading.Lock()
_last = 0


# Ten bits at a time, two characters per lookup: half the steps of a character at a time (every seal
# makes three ids).
_PAIRS = [high + low for high in _ALPHABET for low in _ALPHABET]


def _encode(value: int, length: int) -> str:
    out = []
    for _ in range(length // 2):
        out.append(_PAIRS[value & 1023])
        value >>= 10
    if length % 2:
        out.append(_ALPHABET[value & 31])
    return "".join(reversed(out))


def new_ulid() -> str:
    global _last
    with _lock:
        candidate = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
        # Same millisecond (or a clock step back): keep strictly increasing within the process.
        if candidate <= _last:
            candidate = _last + 1
        _last = candidate
    return _encode(candidate, 26)


def new_id(prefix: str) -> str:
    return f"{prefix}_{new_ulid()}"


def looks_like_id(value: str, prefix: str) -> bool:
    head, _, body = value.partition("_")
    return head == prefix and len(body) == 26 and all(c in _ALPHABET for c in body)
