"""An ARCA simulator: WSAA (loginCms) and WSFEv1 over real SOAP 1.1, with faults.

``main()`` is the command line (``stalela simulate arca``); ``create_app()`` and
``ArcaSimulatorServer`` serve tests in-process. Written from reference/arca.md, independently
of Stalela's ARCA client and IVA engine (an import-linter contract keeps it so). See
docs/authority-simulator.md, "The ARCA simulator".
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from cryptography import x509

from ..server import SimulatorServer, bind_socket, serve
from .app import WSAA_PATH, WSFE_PATH, ArcaSim, create_app
from .faults import ArcaFaultSpec, parse_fault_spec

__all__ = ["WSAA_PATH", "WSFE_PATH", "ArcaFaultSpec", "ArcaSim", "ArcaSimulatorServer",
           "create_app", "main", "parse_fault_spec"]


class ArcaSimulatorServer(SimulatorServer):
    """The ARCA app on a loopback port in a thread, with direct handles on its state.

    ``with ArcaSimulatorServer(faults=ArcaFaultSpec(seed=1)) as sim: sim.wsaa_url ...``
    """

    def __init__(self, app: Callable | None = None, *, faults: ArcaFaultSpec | None = None,
                 ca: x509.Certificate | None = None, state_file: str | None = None,
                 host: str = "127.0.0.1", port: int = 0, log_level: str = "warning") -> None:
        super().__init__(app or create_app(faults, ca=ca, state_file=state_file), host, port,
                         log_level=log_level)

    @property
    def sim(self) -> ArcaSim:
        return self.app.state.sim

    @property
    def wsaa_url(self) -> str:
        return self.url + WSAA_PATH

    @property
    def wsfe_url(self) -> str:
        return self.url + WSFE_PATH

    def state(self) -> dict:
        """The same JSON as ``GET /_sim/state``."""
        return self.sim.state.snapshot()

    def last(self, cuit: str, pos: int, cbte_type: int) -> int:
        return self.sim.state.get_series(str(cuit), pos, cbte_type).last

    def caes(self, cuit: str, pos: int, cbte_type: int) -> dict[int, str]:
        """number -> CAE for every receipt authorised in the series."""
        series = self.sim.state.get_series(str(cuit), pos, cbte_type)
        return {n: r.cae for n, r in sorted(series.receipts.items())}

    def set_faults(self, spec: ArcaFaultSpec | None = None, **fields: object) -> None:
        self.sim.faults.set(spec or ArcaFaultSpec.model_validate(fields))

    def force_next(self, fault: str, times: int = 1) -> None:
        """E.g. ``force_next("drop_after_commit")``: the next FECAESolicitar that issues a CAE
        stores it, then loses its answer."""
        self.sim.faults.force(fault, times)

    def set_last(self, cuit: str, pos: int, cbte_type: int, last: int,
                 date: str | None = None) -> None:
        self.sim.state.set_last(str(cuit), pos, cbte_type, last, date)

    def advance_clock(self, seconds: float) -> None:
        self.sim.state.advance(seconds)

    def expire_tickets(self) -> int:
        return self.sim.state.expire_tickets()

    def start(self, timeout: float = 10.0) -> ArcaSimulatorServer:
        super().start(timeout)
        return self

    def __enter__(self) -> ArcaSimulatorServer:
        return self.start()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stalela simulate arca",
        description="Run an ARCA (WSAA + WSFEv1) SOAP simulator with optional fault injection.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766, help="0 picks a free port")
    parser.add_argument("--faults", default="", metavar="SPEC",
                        help="e.g. drop_after_commit=0.1,http500=0.05,latency_ms=200,"
                             "already_authenticated=0.1,seed=7")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the fault RNG (overrides seed= in --faults)")
    parser.add_argument("--ca", default=None, metavar="PEM",
                        help="only accept WSAA certificates issued by this CA certificate")
    parser.add_argument("--state-file", default=None, metavar="PATH",
                        help="persist tickets and receipts here as JSON, reloaded at start")
    parser.add_argument("--log-level", default="warning",
                        choices=["critical", "error", "warning", "info", "debug", "trace"])
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help or a usage error: argparse has already printed why
        return int(exc.code or 0)
    try:
        faults = parse_fault_spec(args.faults) if args.faults else ArcaFaultSpec()
        if args.seed is not None:
            faults = faults.model_copy(update={"seed": args.seed})
        ca = None
        if args.ca:
            with open(args.ca, "rb") as fh:
                ca = x509.load_pem_x509_certificate(fh.read())
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    app = create_app(faults, ca=ca, state_file=args.state_file)
    try:
        sock = bind_socket(args.host, args.port)
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{sock.getsockname()[1]}"
    # Machine-readable lines for whoever started us; the socket already listens.
    print(f"wsaa {url}{WSAA_PATH}")
    print(f"wsfe {url}{WSFE_PATH}")
    print(f"listening {url}", flush=True)
    serve(app, sock, log_level=args.log_level)
    return 0
