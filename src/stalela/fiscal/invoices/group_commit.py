"""Group commit: concurrent seal requests of one process share one transaction per tenant.

The durable commit, not the signature, bounds sealing: every seal of a tenant queues on its Merkle
log lock, held until the commit is on disk. So instead of one transaction per request, a leader per
tenant takes every request waiting at that moment (up to ``group_commit_max``, after waiting at
most ``group_commit_window_ms`` for stragglers) and seals them in order in one transaction
(``sealing.seal_many``). While that commit is in flight the next group gathers, so the group size
follows the load by itself: one request alone is sealed at once, a thousand share a handful of
commits.

Each request keeps its own outcome: an item rejected by a rule fails alone, inside the group. If the
group's transaction itself fails (a database fault, a constraint nobody foresaw), nothing of it was
committed and its items are sealed again one transaction each, so one bad item cannot fail the
others; whatever still fails then fails alone.

A request that is cancelled while it waits (the client went away) is still sealed, like a request
whose client disconnects after the commit: its Idempotency-Key retry gets the original answer.

Fairness: a process runs at most one sealing transaction per tenant at a time (groups and batches
take the tenant's turn in arrival order), so a tenant's flood waits in memory, not on the log lock
holding pooled connections every other tenant needs; a batch is sealed in slices of at most
``group_commit_max``, each its own transaction, so the tenant's single seals and every other
tenant's groups take turns with it; and ``seal_many`` yields to the event loop while it computes a
large group. Under ``stalela serve --workers N`` a tenant's seals are routed to one process
(``owners.py``).
"""
from __future__ import annotations

import asyncio
import contextvars
from dataclasses import dataclass, field

from stalela.config import Settings
from stalela.db.session import Database
from stalela.errors import ServiceUnavailable, StalelaError
from stalela.fiscal.invoices.owners import NotDelivered, OwnerLost, SealRouter
from stalela.fiscal.invoices.sealing import Outcome, SealRequest, SealResult, seal_many
from stalela.observability import context as log_context
from stalela.observability import tracing
from stalela.observability.logging import get_logger
from stalela.observability.metrics import seal_routed
from stalela.tenancy.context import bind_tenant

log = get_logger("stalela.sealing")


@dataclass
class _Waiter:
    request: SealRequest
    future: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Sealer:
    """How this process seals: grouped (the default) or one transaction per request."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.grouped = settings.group_commit
        self._queues: dict[str, list[_Waiter]] = {}
        self._leaders: dict[str, asyncio.Task] = {}
        self._turns: dict[str, asyncio.Lock] = {}  # one sealing transaction per tenant at a time
        self.router: SealRouter | None = None

    async def start(self) -> None:
        """Join the serve's other API processes (``owners.py``) when it runs several."""
        directory = self.settings.seal_peers_dir
        if directory is not None and self.settings.seal_routing:
            owns = self.settings.seal_owner_here
            self.router = SealRouter(directory, self._serve_peer if owns else None)
            await self.router.start()

    async def close(self) -> None:
        if self.router is not None:
            await self.router.close()
            self.router = None

    async def _serve_peer(self, kind: str, payload):  # noqa: ANN001, ANN202
        requests = [payload] if kind == "seal" else payload[1]
        for request in requests:  # the sender's trace, so the seal's stages are its request's children
            request.trace_context = tracing.from_portable(request.trace_context)
        if kind == "seal":
            return await self.seal(payload, local=True)
        return await self.seal_batch(payload[0], requests, local=True)

    async def _routed(self, tenant_id: str, kind: str, requests: list[SealRequest]):  # noqa: ANN202
        """The owner's answer to ``requests`` (one seal, or a batch's slice), or ``_HERE`` when this
        process must seal them itself."""
        owner = self.router.owner(tenant_id) if self.router is not None else None
        if owner is None:
            return _HERE
        traces = [r.trace_context for r in requests]
        for request in requests:  # W3C headers cross, not this process's context objects
            request.trace_context = tracing.portable(request.trace_context)
        payload = requests[0] if kind == "seal" else (tenant_id, requests)
        # Every item has its Idempotency-Key: one the lost owner committed is answered from it.
        retry_here = all(r.idempotency_key is not None for r in requests)
        try:
            answer = await self.router.call(owner, kind, payload)
        except NotDelivered:
            seal_routed("sealed_here")
            return _HERE
        except OwnerLost as exc:
            seal_routed("owner_lost")
            if retry_here:
                log.warning("seal_owner_lost", tenant_id=tenant_id, kind=kind, retried=True)
                return _HERE
            log.warning("seal_owner_lost", tenant_id=tenant_id, kind=kind, retried=False)
            raise ServiceUnavailable("the process sealing for this tenant stopped before answering; the "
                                     "invoice may have been sealed: retry with an Idempotency-Key, or look it "
                                     "up by its reference", code="seal_owner_lost") from exc
        except StalelaError:
            seal_routed("handed_over")  # sealed or rejected there: the rejection is the answer
            raise
        finally:
            for request, trace in zip(requests, traces):
                request.trace_context = trace
        seal_routed("handed_over")
        return answer

    def _turn(self, tenant_id: str) -> asyncio.Lock:
        turn = self._turns.get(tenant_id)
        if turn is None:
            turn = self._turns[tenant_id] = asyncio.Lock()
        return turn

    async def seal(self, request: SealRequest, *, local: bool = False) -> SealResult:
        """Seal one invoice in its own committed transaction, or in a group's; raises what rejected it.

        ``local``: seal in this process even if another owns the tenant (a peer's request)."""
        if not local and (answer := await self._routed(request.principal.tenant_id, "seal", [request])) is not _HERE:
            return answer
        if not self.grouped:  # one request, one transaction: still one at a time per tenant
            async with self._turn(request.principal.tenant_id):
                [outcome] = await self._transaction(request.principal.tenant_id, [request])
            return _unwrap(outcome)
        tenant_id = request.principal.tenant_id
        waiter = _Waiter(request)
        self._queues.setdefault(tenant_id, []).append(waiter)
        if tenant_id not in self._leaders:
            # A fresh context: the leader must not log or trace as the request that happened to start it.
            self._leaders[tenant_id] = asyncio.create_task(self._lead(tenant_id), context=contextvars.Context())
        return _unwrap(await asyncio.shield(waiter.future))

    async def seal_batch(self, tenant_id: str, requests: list[SealRequest], *, local: bool = False) -> list[Outcome]:
        """A client's batch, in order: slices of at most ``group_commit_max``, one transaction each
        unless something fails; the tenant's other seals may take turns between slices. A slice that
        fails once an earlier one is committed fails its own items only (each gets the error)."""
        limit = self.settings.group_commit_max
        outcomes: list[Outcome] = []
        for start in range(0, len(requests), limit):
            part = requests[start:start + limit]
            try:
                outcomes.extend(await self._slice(tenant_id, part, local))
            except Exception as exc:
                if not outcomes:
                    raise  # nothing of the batch is sealed: it fails whole, as one transaction would
                # The slices before are committed: their outcomes must reach the client (a 5xx for the
                # whole batch would have its retry seal them again); this slice's items fail alone.
                failed = exc if isinstance(exc, StalelaError) else _unexpected(exc)
                outcomes.extend([failed] * len(part))
        return outcomes

    async def _slice(self, tenant_id: str, part: list[SealRequest], local: bool) -> list[Outcome]:
        # Handed over slice by slice: each frame is (un)pickled in a few ms, never a whole batch's worth
        # of the owner's event loop at once.
        if not local and (answer := await self._routed(tenant_id, "batch", part)) is not _HERE:
            return answer
        async with self._turn(tenant_id):
            return await self._isolated(tenant_id, part)

    async def _lead(self, tenant_id: str) -> None:
        queue = self._queues[tenant_id]
        limit, window = self.settings.group_commit_max, self.settings.group_commit_window_ms / 1000
        try:
            while queue:
                # The tenant's turn first (a batch slice may hold it): what queues meanwhile joins this group.
                async with self._turn(tenant_id):
                    if len(queue) < limit and window > 0:
                        await asyncio.sleep(window)  # let the requests already on their way join
                    group = queue[:limit]
                    del queue[:limit]
                    outcomes = await self._guarded(tenant_id, [w.request for w in group])
                for waiter, outcome in zip(group, outcomes):
                    if not waiter.future.done():
                        waiter.future.set_result(outcome)
        except BaseException as exc:  # never leave a request waiting forever
            for waiter in queue:
                if not waiter.future.done():
                    waiter.future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("sealer stopped"))
            queue.clear()
            raise
        finally:
            del self._leaders[tenant_id]

    async def _guarded(self, tenant_id: str, requests: list[SealRequest]) -> list[Outcome | BaseException]:
        try:
            return await self._isolated(tenant_id, requests)
        except Exception as exc:  # a group of one that failed: its own error, nobody else's
            return [exc]

    async def _isolated(self, tenant_id: str, requests: list[SealRequest]) -> list[Outcome]:
        try:
            return await self._transaction(tenant_id, requests)
        except Exception as exc:
            if len(requests) == 1:
                raise
            if isinstance(exc, ServiceUnavailable):  # the database or signer is away: one by one would fail alike
                return [exc] * len(requests)
            log.warning("seal_group_failed", tenant_id=tenant_id, size=len(requests), error=repr(exc))
            outcomes: list[Outcome] = []
            for request in requests:  # one transaction each: the fault stays with its own item
                try:
                    outcomes.extend(await self._transaction(tenant_id, [request]))
                except Exception as one:
                    outcomes.append(one if isinstance(one, StalelaError) else _unexpected(one))
            return outcomes

    async def _transaction(self, tenant_id: str, requests: list[SealRequest]) -> list[Outcome]:
        async with self.db.transaction() as session:
            await bind_tenant(session, tenant_id)
            log_context.bind(tenant_id=tenant_id)
            return await seal_many(session, self.settings, tenant_id, requests)


_HERE = object()


def _unexpected(exc: Exception) -> StalelaError:
    log.error("seal_failed", error=repr(exc))
    return StalelaError("an unexpected error occurred; it has been logged")


def _unwrap(outcome: Outcome | BaseException) -> SealResult:
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome
