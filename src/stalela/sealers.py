"""A sealer process: owns tenants' sealing for the API processes of one ``stalela serve``.

Why a process of its own (docs/performance.md): a tenant's seals are serialized by its Merkle log
lock, held from the group's first statement to its durable commit. In an API process every one of
the group's round trips waits for an event-loop turn behind HTTP parsing, validation and answers,
which stretches the critical section; here the loop runs nothing but groups, so the lock is held
for the group's own work and round trips only. The API processes still do everything per request
(HTTP, authentication, the jurisdiction's rules and totals, the answer) and hand the prepared
request over a Unix socket (``fiscal/invoices/owners.py``); tenants are spread over the sealer
processes by rendezvous hashing, and a request that finds no sealer is sealed in the API process
itself, so a sealer restart costs speed, never a seal.
"""
from __future__ import annotations

import asyncio
import signal

from stalela.billing import quotas as _billing_quotas  # noqa: F401  (its seal admission gate: quotas)
from stalela.config import Settings
from stalela.db.session import Database
from stalela.fiscal.invoices.group_commit import Sealer
from stalela.fiscal.signing.registry import backend_for
from stalela.observability import metrics, tracing
from stalela.observability.runtime import settle_heap
from stalela.observability.logging import get_logger

log = get_logger("stalela.sealers")


async def run_sealer(settings: Settings) -> None:
    """Until SIGTERM or SIGINT: answer the API processes' seal requests; then finish those taken."""
    if settings.seal_peers_dir is None:
        raise RuntimeError("a sealer process needs STALELA_SEAL_PEERS_DIR (stalela serve sets it)")
    settings = settings.model_copy(update={"seal_owner_here": True, "seal_routing": True})
    backend_for(settings)  # a misconfigured key store fails here, at start
    db = Database.from_settings(settings)
    sealer = Sealer(db, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await sealer.start()
    settle_heap()
    log.info("sealer_started", socket=str(sealer.router.path) if sealer.router else None)
    try:
        await stop.wait()
        log.info("sealer_stopping")
    finally:
        await sealer.close()  # requests taken are answered; new ones are refused, their senders seal them
        await db.dispose()
        metrics.mark_process_dead()
        log.info("sealer_stopped")
        tracing.shutdown_tracing()
