"""A `stalela worker` killed (SIGKILL) in the middle of a delivery: another worker sends the same
webhook-id again once the lease runs out, and the lost try shows in the attempts log."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.webhooks.conftest import open_world
from tests.webhooks.test_delivery import SEALED


def _worker(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "stalela.cli.main", "worker", "--concurrency", "4"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait(predicate, what: str, timeout: float = 40.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.parametrize("hooks_database_url", ["postgres"], indirect=True)
async def test_a_worker_killed_mid_delivery_is_replaced_and_the_same_id_sent_again(hooks_database_url, tmp_path,
                                                                                   receiver):
    hold = threading.Event()
    receiver.answer("/k", hold=hold)  # the first request hangs: the worker is killed while waiting
    workers: list[subprocess.Popen] = []
    async for world in open_world(hooks_database_url, tmp_path, receiver):
        endpoint = await world.endpoint("/k")
        env = {k: v for k, v in os.environ.items() if not k.startswith("STALELA_")} | {
            "STALELA_DATABASE_URL": hooks_database_url, "STALELA_MASTER_KEY": "6d" * 32, "STALELA_DATA_DIR": str(tmp_path),  # same master key
            "STALELA_LOG_LEVEL": "WARNING", "STALELA_WEBHOOKS_ALLOW_PRIVATE": "true",
            "STALELA_WEBHOOKS_TIMEOUT_SECONDS": "2", "STALELA_OUTBOX_LEASE_SECONDS": "2",
            "STALELA_OUTBOX_POLL_SECONDS": "0.1", "STALELA_CHECKPOINT_INTERVAL_SECONDS": "0"}
        try:
            await world.emit("invoice.sealed", SEALED)
            workers.append(_worker(env))
            _wait(lambda: len(receiver.at("/k")) == 1, "the first delivery to start")
            workers[0].send_signal(signal.SIGKILL)
            workers[0].wait(10)
            receiver.answer("/k")  # answers 200 from now on
            hold.set()
            workers.append(_worker(env))
            _wait(lambda: len(receiver.at("/k")) == 2, "the delivery to be sent again")
            first, second = receiver.at("/k")
            assert first.id == second.id  # the same webhook-id, so receivers can de-duplicate
            second.verify(endpoint["secret"])
            assert first.body == second.body

            async def delivered() -> bool:
                return [m["status"] for m in await world.messages(endpoint)] == ["delivered"]
            deadline = time.monotonic() + 20
            while not await delivered():
                assert time.monotonic() < deadline, "not marked delivered"
                await asyncio.sleep(0.2)
            [message] = await world.messages(endpoint)
            assert message["id"] == first.id and message["attempts"] == 2
            attempts = await world.attempts(endpoint, message["id"])
            assert [(a["attempt"], a["outcome"]) for a in attempts] == [(1, "interrupted"), (2, "succeeded")]
        finally:
            for w in workers:
                if w.poll() is None:
                    w.terminate()
            for w in workers:
                try:
                    w.wait(20)
                except subprocess.TimeoutExpired:
                    w.kill()
    assert len(receiver.at("/k")) == 2
