"""A DGI e-MCF simulator: a real HTTP server speaking the two-phase protocol, with faults.

``main()`` is the command line (``stalela simulate dgi``); ``create_app()`` and
``SimulatorServer`` serve tests in-process. See docs/authority-simulator.md for the contract.
"""
from __future__ import annotations

import argparse
import secrets
import sys

from .app import create_app
from .faults import FaultSpec, parse_fault_spec
from .server import SimulatorServer, bind_socket, serve

__all__ = ["FaultSpec", "SimulatorServer", "create_app", "main", "parse_fault_spec"]

DEFAULT_NIM = "SIM00001"


def _pairs(values: list[str], what: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, sep, rest = value.partition(":")
        if not sep or not key or not rest:
            raise ValueError(f"{what} {value!r} is not NIM:VALUE")
        pairs[key] = rest
    return pairs


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stalela simulate dgi",
        description="Run a DGI e-MCF simulator (HTTP) with optional fault injection.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--device", action="append", default=[], metavar="NIM:TOKEN",
                        help="a device and its bearer token (repeatable); default: one device "
                             f"{DEFAULT_NIM} with a random token")
    parser.add_argument("--nif-for", action="append", default=[], metavar="NIM:NIF",
                        help="the taxpayer NIF of a device (repeatable)")
    parser.add_argument("--faults", default="", metavar="SPEC",
                        help="e.g. error_rate=0.1,latency_ms=20,drop_rate=0.05,seed=7")
    parser.add_argument("--state-file", default=None, metavar="PATH",
                        help="persist records here as JSON, reloaded at start")
    parser.add_argument("--log-level", default="warning",
                        choices=["critical", "error", "warning", "info", "debug", "trace"])
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help or a usage error: argparse has already printed why
        return int(exc.code or 0)
    try:
        devices = _pairs(args.device, "--device") or {DEFAULT_NIM: secrets.token_urlsafe(24)}
        nifs = _pairs(args.nif_for, "--nif-for")
        faults = parse_fault_spec(args.faults) if args.faults else FaultSpec()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    unknown = sorted(set(nifs) - set(devices))
    if unknown:
        print(f"error: --nif-for names unknown devices: {', '.join(unknown)}", file=sys.stderr)
        return 2
    app = create_app(devices, faults, nifs, state_file=args.state_file)
    try:
        sock = bind_socket(args.host, args.port)
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    port = sock.getsockname()[1]
    host = f"[{args.host}]" if ":" in args.host else args.host
    # Machine-readable lines for whoever started us (tests read them to find token and port);
    # the socket is already listening, so the URL is usable the moment it is printed.
    for nim, token in devices.items():
        print(f"device {nim} {token}")
    print(f"listening http://{host}:{port}", flush=True)
    serve(app, sock, log_level=args.log_level)
    return 0
