"""The shape every periodic background loop shares: wait, run one round, log a failed round and go on.

A round that raises must not end the loop (the database may be away for a moment: the next round tries
again); cancelling the task does end it (``CancelledError`` is no ``Exception``). The logger is passed in,
so that each loop keeps its own logger name and event.
"""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable


async def every(seconds: float, run: Callable[[], Awaitable[Any]], log: Any, failed_event: str) -> None:
    """Run ``run()`` every ``seconds`` (the first time after one wait), forever; a failing round is logged
    as ``failed_event`` with its traceback."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await run()
        except Exception:
            log.exception(failed_event)
