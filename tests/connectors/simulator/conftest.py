from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from stalela.connectors.simulator import MarketplaceSimulator
from tests.connectors.simulator.support import SECRET, Shop
from tests.webhooks.support import Receiver


@pytest.fixture
def make_shop() -> Iterator:
    """Factory: ``make_shop("shopify", time_scale=3600)``, a simulator on a loopback port."""
    with ExitStack() as running:

        def make(platform: str, **options) -> Shop:
            shop = Shop(MarketplaceSimulator(platform, **{"secret": SECRET, **options}).start())
            running.callback(shop.close)
            return shop

        yield make


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP server capturing deliveries; ``receiver.answer(path, 500, default=200)``."""
    r = Receiver()
    yield r
    r.stop()
