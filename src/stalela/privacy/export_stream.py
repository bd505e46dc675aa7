"""Packing a bag straight into the document store: tar and gzip in a worker thread, the store reading
the bytes as they come, through a small bounded buffer (memory holds a few MiB whatever the size).

A producer that fails never closes the stream: the store's ``put`` is cancelled instead of seeing an
end, so a half-packed archive is never stored under the export's key (the store cleans up: the local
backend drops its temporary file, S3 aborts the multipart upload).
"""
from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
from anyio.abc import ObjectSendStream

from stalela.privacy.export_bag import Bag, write_tar_gz
from stalela.storage.base import CHUNK_SIZE, DocumentStore, StoredObject


class _Sink:
    """A write-only file for the packing thread: hands full chunks over to the event loop."""

    def __init__(self, send: ObjectSendStream[bytes]) -> None:
        self._send = send
        self._buffer = bytearray()

    def write(self, data: bytes) -> int:
        self._buffer += data
        if len(self._buffer) >= CHUNK_SIZE:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self._buffer:
            chunk, self._buffer = bytes(self._buffer), bytearray()
            anyio.from_thread.run(self._send.send, chunk)


def _first_real(group: BaseExceptionGroup) -> BaseException:
    """The failure that matters: not the broken pipe the other side saw because of it."""
    flat: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        exc = stack.pop(0)
        if isinstance(exc, BaseExceptionGroup):
            stack.extend(exc.exceptions)
        else:
            flat.append(exc)
    for exc in flat:
        if not isinstance(exc, (anyio.BrokenResourceError, anyio.ClosedResourceError)):
            return exc
    return flat[0]


async def store_archive(store: DocumentStore, key: str, bag: Bag, base_name: str, mtime: int) -> StoredObject:
    send, receive = anyio.create_memory_object_stream[bytes](4)

    def produce() -> None:
        sink = _Sink(send)
        write_tar_gz(bag, base_name, mtime, sink)
        sink.flush()

    async def producer() -> None:
        await anyio.to_thread.run_sync(produce)
        await send.aclose()  # only once everything was packed

    async def chunks() -> AsyncIterator[bytes]:
        async for chunk in receive:
            yield chunk

    stored: StoredObject | None = None
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(producer)
            with receive:
                stored = await store.put(key, chunks())
    except BaseExceptionGroup as failed:
        raise _first_real(failed) from failed
    assert stored is not None
    return stored
