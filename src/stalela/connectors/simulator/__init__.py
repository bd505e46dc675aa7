"""Simulators of Shopify, Mercado Libre, Tienda Nube and WooCommerce for the connectors' tests.

Each is a real HTTP server speaking the platform API subset of the connectors' protocol (orders,
OAuth, write-back) and sending the platform's webhooks (signatures, retries, faults), plus the
``/_sim`` controls. Written from the platforms' public behaviour, independently of the connector
code (an import-linter contract keeps it so). ``main()`` is ``stalela simulate <platform>``;
``build_app()`` and ``MarketplaceSimulator`` serve tests in-process. See docs/connectors.md,
"Platform simulators".
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from typing import Any, Self

from stalela.authority.simulator.server import SimulatorServer, listen, serve

from .app import PLATFORMS, build_app
from .base import Simulator
from .faults import FaultSpec, parse_fault_spec

__all__ = ["PLATFORMS", "FaultSpec", "MarketplaceSimulator", "build_app", "main"]


class MarketplaceSimulator(SimulatorServer):
    """One platform's simulator on a loopback port in a thread: ``with MarketplaceSimulator(
    "shopify", secret="s") as shop: shop.url ...``; ``shop.sim`` is the live simulator."""

    def __init__(self, platform: str, *, host: str = "127.0.0.1", port: int = 0,
                 log_level: str = "warning", **options: Any) -> None:
        super().__init__(build_app(platform, **options), host, port, log_level=log_level)

    @property
    def sim(self) -> Simulator:
        return self.app.state.sim

    def start(self, timeout: float = 10.0) -> Self:
        super().start(timeout)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        # Cancel deliveries in flight and close the sender on the server's own loop first.
        loop = self.sim.dispatcher.loop
        if loop is not None and loop.is_running():
            future = asyncio.run_coroutine_threadsafe(self.sim.dispatcher.aclose(), loop)
            with contextlib.suppress(TimeoutError, asyncio.CancelledError, RuntimeError):
                future.result(timeout)  # stopping anyway
        super().stop(timeout)

    def __enter__(self) -> Self:
        return self.start()


def _delays(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x.strip())


def _faults(text: str) -> FaultSpec:
    try:
        return parse_fault_spec(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser(platform: str) -> argparse.ArgumentParser:
    default_port = PLATFORMS[platform].default_port
    parser = argparse.ArgumentParser(
        prog=f"stalela simulate {platform}",
        description=f"Run a {platform} simulator (HTTP API, signed webhooks, faults, /_sim "
                    "controls).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=default_port, help="0 picks a free port")
    parser.add_argument("--secret", default=None,
                        help="the app secret that signs webhooks (default: random, printed)")
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="divide retry delays by this (3600: Shopify's 4 h in 4 s)")
    parser.add_argument("--faults", type=_faults, default=FaultSpec(), metavar="SPEC",
                        help="e.g. drop=0.3,duplicate=0.2,reorder=true,stale=0.1,"
                             "api_5xx=0.1,seed=1")
    parser.add_argument("--seed", type=int, default=None, help="seed of the fault RNG")
    parser.add_argument("--retry-delays", type=_delays, default=None, metavar="S,S,...",
                        help="retry delays in seconds before scaling (default: the platform's)")
    parser.add_argument("--delivery-timeout", type=float, default=None, metavar="S",
                        help="webhook answer deadline (default: the platform's)")
    parser.add_argument("--token-ttl", type=float, default=None, metavar="S",
                        help="Mercado Libre access token lifetime (default 21600)")
    parser.add_argument("--log-level", default="warning",
                        choices=["critical", "error", "warning", "info", "debug", "trace"])
    return parser


def main(platform: str, argv: list[str] | None = None) -> int:
    if platform not in PLATFORMS:
        print(f"error: unknown platform {platform!r}", file=sys.stderr)
        return 2
    try:
        args = _parser(platform).parse_args(argv)
        seeded = {"seed": args.seed} if args.seed is not None else {}
        app = build_app(platform, secret=args.secret, faults=args.faults.model_copy(update=seeded),
                        time_scale=args.time_scale, retry_delays_s=args.retry_delays,
                        delivery_timeout_s=args.delivery_timeout, token_ttl_s=args.token_ttl)
    except SystemExit as exc:  # --help or a usage error: argparse has already printed why
        return int(exc.code or 0)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        sock, url = listen(args.host, args.port)
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    sim: Simulator = app.state.sim
    # Machine-readable lines for whoever started us ("<name> <value>"); the socket already
    # listens, so the URL is usable the moment it is printed.
    for key, value in {"secret": sim.options.secret, **sim.default_credentials}.items():
        print(f"{key} {value}")
    print(f"listening {url}", flush=True)
    serve(app, sock, log_level=args.log_level)
    return 0
