"""What every document store backend offers, and the rules every key follows.

A key is a relative, slash-separated path such as ``{tenant_id}/exports/{export_id}.tar.gz``: the
tenant first, so that one prefix lists (or purges) everything a tenant has. Keys are checked here, in
one place, for both backends: the local one maps them onto the file system, where ``..`` or an
absolute path would escape its directory, and an S3 key with such parts would not list under the
tenant's prefix.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Protocol, Union

from stalela.errors import NotFound, ServiceUnavailable, StalelaError

# 1 MiB: large enough to keep thread hops and S3 requests few, small enough to stay out of the way.
CHUNK_SIZE = 1 << 20
MAX_KEY_LENGTH = 1024
# Letters, digits and a few separators per segment; no segment is empty, "." or "..".
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._=-]{0,254}")

Content = Union[bytes, AsyncIterable[bytes]]


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    sha256: str | None = None  # known after a put; a listing does not read the content again


class InvalidKey(StalelaError):
    """A bug, never user input: keys are built by the service from ids."""

    code = "storage_key_invalid"
    title = "Invalid storage key"


class ObjectNotFound(NotFound):
    code = "stored_object_not_found"
    title = "Stored file not found"


class StorageUnavailable(ServiceUnavailable):
    code = "storage_unavailable"
    title = "Document store unavailable"


def check_key(key: str) -> str:
    """``key`` if it is a safe relative key, else ``InvalidKey``."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidKey(f"a storage key is 1 to {MAX_KEY_LENGTH} characters")
    segments = key.split("/")
    for segment in segments:
        if not _SEGMENT.fullmatch(segment):  # so never "", "." or "..", nor a hidden (temporary) name
            raise InvalidKey(f"invalid storage key segment {segment!r} in {key!r}")
    return key


def check_prefix(prefix: str) -> str:
    """A listing prefix: empty (everything), or whole segments ending with ``/``, or a key's start."""
    if prefix == "":
        return prefix
    check_key(prefix.rstrip("/") if prefix.endswith("/") else prefix)
    return prefix


class Hasher:
    """SHA-256 and size of what passes through, as it passes."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self._digest.update(chunk)
        self.size += len(chunk)

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


async def chunks_of(content: Content) -> AsyncIterator[bytes]:
    """Bytes or an async iterable of bytes, as non-empty chunks."""
    if isinstance(content, (bytes, bytearray, memoryview)):
        data = bytes(content)
        for start in range(0, len(data), CHUNK_SIZE):
            yield data[start:start + CHUNK_SIZE]
        return
    async for chunk in content:
        if chunk:
            yield bytes(chunk)


class DocumentStore(Protocol):
    """Stored files by key. Every method is async; blocking I/O runs in a worker thread."""

    name: str

    async def put(self, key: str, content: Content) -> StoredObject:
        """Store ``content`` under ``key`` (replacing any previous file) atomically: a reader sees the old
        file or the whole new one, never a part. Returns its size and SHA-256."""
        ...

    def get(self, key: str, *, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        """The file's bytes, streamed; ``ObjectNotFound`` (at the first chunk) if there is none."""
        ...

    async def stat(self, key: str) -> StoredObject | None:
        ...

    async def exists(self, key: str) -> bool:
        ...

    async def delete(self, key: str) -> bool:
        """True if a file was there. Deleting what is not there is not an error (idempotent purges)."""
        ...

    def list(self, prefix: str = "") -> AsyncIterator[StoredObject]:
        """Every file whose key starts with ``prefix``, in key order."""
        ...


async def read_all(store: DocumentStore, key: str) -> bytes:
    """The whole file in memory: for small files and tests, never for exports."""
    return b"".join([chunk async for chunk in store.get(key)])


async def purge(store: DocumentStore, prefix: str) -> int:
    """Delete every file under ``prefix`` (a tenant's, say); returns how many there were."""
    keys = [obj.key async for obj in store.list(check_prefix(prefix))]
    for key in keys:
        await store.delete(key)
    return len(keys)
