"""``build_app(platform, **options)``: one simulated shop as an ASGI app."""
from __future__ import annotations

import secrets
from typing import Any

from fastapi import FastAPI

from .base import Options, Platform, Simulator
from .common import HangUp, SimError, hang_up_response, sim_error_response
from .control import controls
from .faults import FaultInjector, FaultSpec
from .mercadolibre import MercadoLibre
from .shopify import Shopify
from .tiendanube import TiendaNube
from .woocommerce import WooCommerce

PLATFORMS: dict[str, type[Platform]] = {
    p.name: p for p in (Shopify, MercadoLibre, TiendaNube, WooCommerce)}


def build_app(platform: str, *, secret: str | None = None,
              faults: FaultSpec | dict[str, Any] | None = None, **options: Any) -> FastAPI:
    """The simulator of ``platform`` (shopify, mercadolibre, tiendanube, woocommerce).

    ``options`` are ``Options`` fields: ``time_scale``, ``retry_delays_s``,
    ``delivery_timeout_s``, ``disable_after``, ``delete_after_exhausted``, ``token_ttl_s``.
    The simulator object is ``app.state.sim``.
    """
    try:
        platform_class = PLATFORMS[platform]
    except KeyError:
        raise ValueError(f"unknown platform {platform!r}: one of {', '.join(PLATFORMS)}") from None
    if isinstance(faults, dict):
        faults = FaultSpec.model_validate(faults)
    settings = Options(secret=secret or secrets.token_urlsafe(24), **options)
    if settings.time_scale <= 0:
        raise ValueError("time_scale must be positive")
    sim = Simulator(platform_class, settings, FaultInjector(faults))
    app = FastAPI(title=f"Stalela {platform} simulator", docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.sim = sim
    app.include_router(controls)
    app.include_router(sim.platform.router())
    app.add_exception_handler(SimError, sim_error_response)
    app.add_exception_handler(HangUp, hang_up_response)
    return app
