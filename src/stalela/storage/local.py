"""The local directory backend (the embedded default: ``{data_dir}/files``).

Writes go to a temporary file in the destination's directory, are flushed to disk, then renamed over
the key's path: a rename within one file system is atomic, so a reader (or a crash) never meets half a
file under its final name. Temporary files start with ``.`` and are never listed.
"""
from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

import anyio

from stalela.storage.base import (
    CHUNK_SIZE,
    Content,
    Hasher,
    ObjectNotFound,
    StoredObject,
    check_key,
    check_prefix,
    chunks_of,
)


class LocalStore:
    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def path(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        # check_key already refuses "..", absolute keys and empty segments; this is the belt to its braces.
        if self.root not in path.parents:
            raise ValueError(f"{key!r} resolves outside the store")
        return path

    async def put(self, key: str, content: Content) -> StoredObject:
        final = self.path(key)
        await anyio.to_thread.run_sync(lambda: final.parent.mkdir(parents=True, exist_ok=True))
        temp = final.with_name(f".{final.name}.{secrets.token_hex(8)}.tmp")
        hasher = Hasher()
        handle: BinaryIO = await anyio.to_thread.run_sync(lambda: open(temp, "xb"))
        try:
            try:
                async for chunk in chunks_of(content):
                    hasher.update(chunk)
                    await anyio.to_thread.run_sync(handle.write, chunk)
                await anyio.to_thread.run_sync(_flush, handle)
            finally:
                await anyio.to_thread.run_sync(handle.close)
            await anyio.to_thread.run_sync(os.replace, temp, final)
            await anyio.to_thread.run_sync(_fsync_dir, final.parent)
        except BaseException:
            await anyio.to_thread.run_sync(lambda: temp.unlink(missing_ok=True))
            raise
        return StoredObject(key, hasher.size, hasher.hexdigest())

    async def get(self, key: str, *, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        path = self.path(key)
        try:
            handle: BinaryIO = await anyio.to_thread.run_sync(lambda: open(path, "rb"))
        except FileNotFoundError:
            raise ObjectNotFound(f"no stored file {key}") from None
        try:
            while chunk := await anyio.to_thread.run_sync(handle.read, chunk_size):
                yield chunk
        finally:
            handle.close()

    async def stat(self, key: str) -> StoredObject | None:
        path = self.path(key)
        try:
            size = (await anyio.to_thread.run_sync(path.stat)).st_size
        except FileNotFoundError:
            return None
        return StoredObject(key, size)

    async def exists(self, key: str) -> bool:
        return await self.stat(key) is not None

    async def delete(self, key: str) -> bool:
        path = self.path(key)
        try:
            await anyio.to_thread.run_sync(path.unlink)
        except FileNotFoundError:
            return False
        return True

    async def list(self, prefix: str = "") -> AsyncIterator[StoredObject]:
        check_prefix(prefix)
        for obj in await anyio.to_thread.run_sync(self._walk, prefix):
            yield obj

    def _walk(self, prefix: str) -> list[StoredObject]:
        # Walk only the directory the prefix's whole segments name, then filter on the rest.
        base = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        found = []
        for directory, dirs, files in os.walk(base):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in files:
                if name.startswith("."):
                    continue
                path = Path(directory) / name
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    try:
                        found.append(StoredObject(key, path.stat().st_size))
                    except FileNotFoundError:  # deleted meanwhile
                        continue
        return sorted(found, key=lambda o: o.key)


def _flush(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
