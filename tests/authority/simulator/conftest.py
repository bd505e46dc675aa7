from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.authority.simulator.support import Sim, start_sim


@pytest.fixture
def make_sim() -> Iterator:
    """Factory: a simulator on a loopback port in a thread, stopped after the test."""
    sims: list[Sim] = []

    def make(*args, **kwargs) -> Sim:
        sim = start_sim(*args, **kwargs)
        sims.append(sim)
        return sim

    yield make
    for sim in sims:
        sim.stop()


@pytest.fixture
def sim(make_sim) -> Sim:
    return make_sim()


@pytest.fixture
def client(sim) -> Iterator[httpx.Client]:
    with sim.client() as c:
        yield c
