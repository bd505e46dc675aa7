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


# ------------------------------------------------------------------------------ the ARCA simulator


@pytest.fixture(scope="session")
def arca_identity():
    """One RSA key and self-signed certificate with serialNumber=CUIT (key generation is slow)."""
    from tests.authority.simulator.arca_support import make_identity

    return make_identity()


@pytest.fixture
def make_arca() -> Iterator:
    """Factory: an ARCA simulator on a loopback port in a thread, stopped after the test."""
    from stalela.authority.simulator.arca import ArcaSimulatorServer

    sims: list = []

    def make(**kwargs):
        sim = ArcaSimulatorServer(**kwargs).start()
        sims.append(sim)
        return sim

    yield make
    for sim in sims:
        sim.stop()


@pytest.fixture
def arca(make_arca):
    return make_arca()


@pytest.fixture
def wsfe(arca, arca_identity) -> Iterator:
    """A WSFEv1 caller holding a ticket freshly obtained from the simulator's WSAA."""
    from tests.authority.simulator.arca_support import Wsfe, login

    token, sign = login(arca.url, arca_identity)
    client = Wsfe(arca.url, token, sign)
    yield client
    client.close()
