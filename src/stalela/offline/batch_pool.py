"""A returned batch's device signatures checked in a pool of processes while the API process runs the
other per-invoice checks (``batch_checks.unsigned``: the request recomputed by the engine).

Verifying an ECDSA signature costs about three times making one: it is what makes a merge slower than
batch sealing the same invoices in one process (docs/performance.md, "Offline sealing"). It needs no lock
and no database, and its input and output are small (a seal in; a verdict and the verified bytes out),
unlike the whole check's (a recomputed invoice pickles at the cost of computing it: measured, so only the
signatures move). The pool's processes are started with ``spawn`` (forking a process that runs an event
loop and driver threads is unsafe), lazily, on the first batch big enough to gain from them, and kept for
the process's life. A broken pool (a worker killed) is replaced and that batch's signatures checked inline:
the outcome never depends on where they were checked. ``STALELA_OFFLINE_CHECK_PROCESSES=0`` checks inline.
"""
from __future__ import annotations

import asyncio
import multiprocessing
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Sequence

from stalela.config import Settings
from stalela.fiscal.invoices import offline_merge
from stalela.observability.logging import get_logger
from stalela.offline.batch_checks import Prepared, Verdict, settle, signature, unsigned

log = get_logger("stalela.offline")

# Below this many invoices, handing them to other processes (pickling both ways) costs more than it saves.
POOL_MIN = 128
YIELD_EVERY = 8  # inline, a 1,000-invoice batch gives the event loop back this often (see sealing.YIELD_EVERY)

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_warming: list[Future] = []


def _warm_up() -> None:
    """Nothing: running it imports this module (and the fiscal core) in a new process of the pool."""


def _pool_of(processes: int) -> ProcessPoolExecutor | None:
    """The pool once its processes have started, else None (and they are started): a new process takes
    seconds to import the service, and a batch waiting for that would be slower than one checked inline."""
    global _pool, _warming
    with _lock:
        if _pool is None:
            _pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"))
            _warming = [_pool.submit(_warm_up) for _ in range(processes)]
        return _pool if all(f.done() for f in _warming) else None


def shutdown(wait: bool = True) -> None:
    """Stop the pool's processes (the app's lifespan, at its end)."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=wait, cancel_futures=True)


def _verdicts(seals: list[dict[str, Any]], jwk: dict[str, Any]) -> list[Verdict | None]:
    """In a pool process. None for a seal whose payload is not an object (``unsigned`` holds it first)."""
    return [signature(seal, jwk) if isinstance(seal.get("payload"), dict) else None for seal in seals]


async def prepare_all(settings: Settings, items: Sequence[Any], plan: offline_merge.Numbering,
                      device_jwk: dict[str, Any], block: dict[str, Any]) -> list[Prepared]:
    """Every item checked (``unsigned``, then ``settle``), in the items' order (indexes are their positions)."""
    processes = settings.offline_check_processes
    pending = None
    if processes > 0 and len(items) >= POOL_MIN:
        size = -(-len(items) // processes)
        loop = asyncio.get_running_loop()
        try:
            pool = _pool_of(processes)
            if pool is not None:
                pending = asyncio.gather(*[
                    loop.run_in_executor(pool, _verdicts, [item.seal for item in items[start:start + size]],
                                         device_jwk)
                    for start in range(0, len(items), size)])
        except BrokenProcessPool:  # already known broken when submitting
            pending = None
            shutdown(wait=False)
    prepared = []
    for index, item in enumerate(items):
        if index % YIELD_EVERY == YIELD_EVERY - 1:
            await asyncio.sleep(0)
        prepared.append(unsigned(index, item, plan, block))
    verdicts: list[Verdict | None] = [None] * len(items)
    if pending is not None:
        try:
            verdicts = [v for part in await pending for v in part]
        except BrokenProcessPool:
            log.warning("offline_check_pool_broken", items=len(items))
            shutdown(wait=False)  # the next batch starts a new one
    settled = []
    for index, (p, verdict) in enumerate(zip(prepared, verdicts)):
        if verdict is None and index % YIELD_EVERY == YIELD_EVERY - 1:
            await asyncio.sleep(0)
        settled.append(settle(p, device_jwk, verdict))
    return settled
