"""Seal routing between the API processes of one ``stalela serve``: a tenant's seals go to one process.

Why: a tenant's sealing is serialized by its Merkle log lock, held until the durable commit. Two
processes each gathering their own groups for the same tenant queue on that lock, each with smaller
groups paying the same round trips and commit, so a second process lowered throughput (issue 22:
381 seals/s with one worker, 316/s with two). Routed, every seal of a tenant joins the group commit
of one process, its owner; the others still do the per-request work (HTTP, authentication, body
validation, the jurisdiction's rules and totals in ``sealing.prepare``, the answer's encoding) and
hand the prepared request over a Unix socket. docs/performance.md compares this with the other
designs measured.

Ownership is rendezvous (highest random weight) hashing of the tenant id over the live processes,
whose sockets sit in one directory the serve master creates: a process that starts or stops moves
only the tenants it gains or loses. Membership is re-read at most once a second; while two
processes disagree both seal for the tenant, which is only slower. Correctness never depends on
routing: the log and series locks still serialize every sealer, across processes and hosts.

Failures: a request that could not be handed over (no listener) is sealed here. One whose owner
went away after receiving it may or may not have been sealed: with an Idempotency-Key it is sealed
here, where the key answers the original if the owner committed it; without one the client gets
``503 seal_owner_lost``, the same uncertainty as an HTTP answer lost on the way.

Frames are length-prefixed pickles: what crosses is this same code's objects (a prepared request
with its Decimal totals, an outcome or the error that rejected it), between processes of one serve.
The directory is 0700 and the sockets 0600: only the service's own user can connect, the trust
boundary of the processes' memory itself.
"""
from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import pickle
import struct
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

from stalela.observability.logging import get_logger

log = get_logger("stalela.sealing.owners")
_HEADER = struct.Struct("!IQ")  # the pickle's length, the request's id (readable if the pickle is not)
REFRESH_SECONDS = 1.0
SUFFIX = ".sock"
# What a peer's handler runs: ("seal", SealRequest) or ("batch", (tenant_id, [SealRequest])).
Handler = Callable[[str, Any], Awaitable[Any]]
# The id of the frame a stopping owner sends on each connection: send nothing more on it.
GOODBYE = 2**64 - 1
# The first frame of a connection, before which nothing is sent: a connection the owner's listener
# never took (it stopped with the connection in its backlog) then fails as "not delivered".
HELLO = 2**64 - 2


class NotDelivered(Exception):
    """The owner never received the request (or refused it while stopping): sealing it here is safe."""

    def __init__(self, detail: str, stale: bool = False) -> None:
        super().__init__(detail)
        self.stale = stale  # nobody listens on the socket: its process is gone


class OwnerLost(Exception):
    """The owner received the request and went away before answering: it may have been sealed."""


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, Any]:
    """One frame: its request id, and what it carries, or the exception unpickling it raised."""
    size, request_id = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    data = await reader.readexactly(size)
    try:
        return request_id, pickle.loads(data)
    except Exception as exc:  # one bad frame fails its own request, not the connection
        return request_id, exc


def _frame(request_id: int, value: Any) -> bytes:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data), request_id) + data


class _Peer:
    """One multiplexed connection to another process's socket."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer: asyncio.StreamWriter | None = None
        self.pending: dict[int, asyncio.Future] = {}
        self.ids = itertools.count()
        self.connecting = asyncio.Lock()
        self.reader_task: asyncio.Task | None = None
        self.retiring = False  # the owner said goodbye on this connection

    async def call(self, kind: str, payload: Any) -> Any:
        async with self.connecting:
            if self.retiring:
                raise NotDelivered("the owner is stopping")
            if self.writer is None or self.writer.is_closing():
                try:
                    reader, writer = await asyncio.open_unix_connection(str(self.path))
                except OSError as exc:
                    stale = isinstance(exc, (ConnectionRefusedError, FileNotFoundError))
                    raise NotDelivered(str(exc), stale=stale) from exc
                try:
                    greeting, _ = await asyncio.wait_for(_read_frame(reader), 5)
                except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as exc:
                    writer.close()
                    raise NotDelivered(f"no greeting: {exc!r}") from exc
                if greeting != HELLO:
                    writer.close()
                    self.retiring = greeting == GOODBYE
                    raise NotDelivered("the owner is stopping")
                self.writer = writer
                self.reader_task = asyncio.create_task(self._read(reader), name=f"seal-peer-{self.path.name}")
        request_id = next(self.ids)
        future = asyncio.get_running_loop().create_future()
        self.pending[request_id] = future
        try:
            frame = _frame(request_id, (kind, payload))
        except Exception as exc:  # what does not pickle never left: sealed here
            self.pending.pop(request_id, None)
            raise NotDelivered(f"not sendable: {exc!r}") from exc
        try:
            self.writer.write(frame)
            await self.writer.drain()
        except OSError as exc:
            self.pending.pop(request_id, None)
            raise OwnerLost(str(exc)) from exc
        try:
            ok, value = await asyncio.shield(future)
        finally:
            self._close_if_retired()
        if not ok:
            raise value
        return value

    def retire(self) -> None:
        """Send nothing more on this connection; the requests already sent still get their answers
        (the owner took them and will answer), then it closes."""
        self.retiring = True
        self._close_if_retired()

    def _close_if_retired(self) -> None:
        # The owner reads until this end closes: closing once nothing is pending lets it stop at once.
        if self.retiring and not self.pending and self.writer is not None:
            self.writer.close()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                request_id, reply = await _read_frame(reader)
                if request_id == GOODBYE:
                    self.retiring = True
                    self._close_if_retired()
                    continue
                # A reply that does not unpickle: the owner sealed or refused it, nobody here can say which.
                ok, value = reply if not isinstance(reply, Exception) else (False, OwnerLost(repr(reply)))
                future = self.pending.pop(request_id, None)
                if future is not None and not future.done():
                    future.set_result((ok, value))
                self._close_if_retired()  # the last answer due (its caller may have gone: cancelled)
        except (asyncio.IncompleteReadError, OSError, asyncio.CancelledError) as exc:
            lost = OwnerLost(f"the owner process closed the connection ({exc!r})")
            for future in self.pending.values():
                if not future.done():
                    future.set_result((False, lost))
            self.pending.clear()
            if self.writer is not None:
                self.writer.close()

    async def close(self) -> None:
        if self.reader_task is not None:
            self.reader_task.cancel()
            await asyncio.gather(self.reader_task, return_exceptions=True)
        if self.writer is not None:
            self.writer.close()


class SealRouter:
    """This process's place among the serve's API processes: its socket, and who owns which tenant."""

    def __init__(self, directory: Path, handler: Handler | None, name: str | None = None) -> None:
        """``handler`` None: this process owns no tenant (it hands every seal to the sealer processes)."""
        self.directory = directory
        self.name = name or f"{os.getpid()}{SUFFIX}"
        self.path = directory / self.name
        self.handler = handler
        self.members: list[str] = [self.name] if handler is not None else []
        self.listed_at = float("-inf")
        self.owners: dict[str, str | None] = {}
        self.peers: dict[str, _Peer] = {}
        self.server: asyncio.AbstractServer | None = None
        self.serving: set[asyncio.Task] = set()
        self.accepted: set[asyncio.StreamWriter] = set()
        self.closing = False

    async def start(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)  # also one an operator named: only the service's user may connect
        if self.handler is None:
            return
        self.path.unlink(missing_ok=True)
        self.server = await asyncio.start_unix_server(self._accept, path=str(self.path))
        os.chmod(self.path, 0o600)
        log.info("seal_router_started", socket=str(self.path))

    def owner(self, tenant_id: str) -> str | None:
        """The member that seals for ``tenant_id``; None when it is this process."""
        now = time.monotonic()
        if now - self.listed_at > REFRESH_SECONDS:
            self._list(now)
        if not self.members:
            return None  # no sealer process yet (starting, or all restarting): sealed here
        if tenant_id not in self.owners:
            best = max(self.members, key=lambda m: hashlib.blake2b(f"{tenant_id}/{m}".encode(), digest_size=8).digest())
            self.owners[tenant_id] = None if best == self.name else best
        return self.owners[tenant_id]

    def _list(self, now: float) -> None:
        self.listed_at = now
        try:
            found = sorted(e.name for e in os.scandir(self.directory) if e.name.endswith(SUFFIX))
        except OSError:
            found = []
        members = found if self.name in found or self.handler is None else sorted([*found, self.name])
        if members != self.members:
            self.members, self.owners = members, {}

    def forget(self, member: str, stale: bool) -> None:
        """Drop a member that is stopping or gone until the next listing; a socket nobody listens on
        (its process died) is removed, so that listing does not bring it back."""
        if member == self.name:
            return
        self.members = [m for m in self.members if m != member]
        self.owners = {}
        peer = self.peers.pop(member, None)
        if peer is not None:
            # Retired, not closed: a refusal ("not delivered") says nothing of the requests the member
            # took before it, which it answers while it stops; dropping their connection would turn
            # those answers into OwnerLost (a 503 for an invoice that is sealed).
            peer.retire()
        if stale:
            try:
                (self.directory / member).unlink(missing_ok=True)
            except OSError:
                pass

    async def call(self, member: str, kind: str, payload: Any) -> Any:
        peer = self.peers.get(member)
        if peer is None:
            peer = self.peers[member] = _Peer(self.directory / member)
        try:
            return await peer.call(kind, payload)
        except NotDelivered as exc:
            self.forget(member, exc.stale)
            raise

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted.add(writer)
        writer.write(_frame(GOODBYE if self.closing else HELLO, None))
        try:
            while True:
                request_id, message = await _read_frame(reader)
                if self.closing or isinstance(message, Exception):  # the sender seals it itself
                    why = "the owner is stopping" if self.closing else f"not readable here: {message!r}"
                    writer.write(_frame(request_id, (False, NotDelivered(why))))
                    continue
                kind, payload = message
                task = asyncio.create_task(self._answer(writer, request_id, kind, payload))
                self.serving.add(task)
                task.add_done_callback(self.serving.discard)
        except (asyncio.IncompleteReadError, OSError):
            pass  # the peer closed its end (it stopped, or this process is stopping)
        finally:
            self.accepted.discard(writer)

    async def _answer(self, writer: asyncio.StreamWriter, request_id: int, kind: str, payload: Any) -> None:
        try:
            reply = (True, await self.handler(kind, payload))
        except Exception as exc:  # the outcome is the peer's to raise, exactly as if sealed there
            reply = (False, exc)
        try:
            try:
                frame = _frame(request_id, reply)
            except Exception as exc:  # an error that does not pickle: its text, as an unexpected error
                frame = _frame(request_id, (False, RuntimeError(repr(exc))))
            writer.write(frame)
            await writer.drain()
        except OSError:
            log.warning("seal_peer_gone", kind=kind)  # it will answer 503 or retry by its key

    async def close(self, grace: float = 30.0) -> None:
        """Stop taking requests (peers seal themselves from now on), finish the ones taken, disconnect."""
        self.closing = True
        if self.server is not None:
            self.server.close()
            self.path.unlink(missing_ok=True)
        # Frames already on their way are answered "not delivered" (their senders seal them), until
        # each sender, told goodbye, closes its end once its answers are in.
        for writer in list(self.accepted):
            writer.write(_frame(GOODBYE, None))
        deadline = asyncio.get_running_loop().time() + grace
        if self.serving:
            await asyncio.wait(set(self.serving), timeout=grace)
        while self.accepted and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        for writer in list(self.accepted):
            writer.close()
        for peer in list(self.peers.values()):
            await peer.close()
        self.peers.clear()
