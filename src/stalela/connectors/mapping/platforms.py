"""The platform readers by name. Each module offers the same four functions (`Reader`)."""
from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Protocol

from stalela.connectors.mapping import mercadolibre, shopify, tiendanube, woocommerce
from stalela.connectors.mapping.model import Order, OrderState


class Reader(Protocol):
    PLATFORM: str

    def key(self, order: dict[str, Any]) -> str: ...

    def version(self, order: dict[str, Any]) -> str: ...

    def state(self, order: dict[str, Any]) -> OrderState: ...

    def read(self, order: dict[str, Any], billing_info: dict[str, Any] | None = None) -> Order: ...


PLATFORMS: Mapping[str, Reader] = MappingProxyType({
    module.PLATFORM: module for module in (shopify, mercadolibre, tiendanube, woocommerce)  # type: ignore[misc]
})


def reader(platform: str) -> Reader:
    try:
        return PLATFORMS[platform]
    except KeyError:
        raise ValueError(f"unknown platform {platform!r}; known: {', '.join(PLATFORMS)}") from None
