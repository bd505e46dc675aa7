"""OpenTelemetry traces, exported over OTLP/HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.

When it is not set nothing here imports the OpenTelemetry SDK, no provider exists, and every helper
returns at once (``span()`` yields a shared no-op object): tracing off costs one function call and
a ``None`` check per instrumented point.

The standard ``OTEL_*`` variables apply (the exporter reads them itself): ``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_TRACES_SAMPLER`` and
``OTEL_TRACES_SAMPLER_ARG``, ``OTEL_BSP_SCHEDULE_DELAY`` ..., and ``OTEL_SDK_DISABLED=true``.
"""
from __future__ import annotations

import os
import socket
import threading
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Iterator, Mapping

_lock = threading.Lock()
_provider: Any = None
_tracer: Any = None


class _NoopSpan:
    __slots__ = ()

    def set_attribute(self, key: str, value: Any) -> None:
        pass

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        pass

    def update_name(self, name: str) -> None:
        pass

    def is_recording(self) -> bool:
        return False


NOOP_SPAN = _NoopSpan()


def enabled() -> bool:
    return _tracer is not None


def requested() -> bool:
    """True when the environment asks for traces."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def configure_tracing(service_version: str = "") -> bool:
    """Install the tracer provider and OTLP exporter once per process; False (and no work) when off."""
    global _provider, _tracer
    if not requested():
        return False
    with _lock:
        if _tracer is not None:
            return True
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        attributes = {"service.instance.id": f"{socket.gethostname()}:{os.getpid()}"}
        if service_version:
            attributes["service.version"] = service_version
        if not os.environ.get("OTEL_SERVICE_NAME"):
            attributes["service.name"] = "stalela"
        provider = TracerProvider(resource=Resource.create(attributes))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        # Deliberately not the global provider: recent FastAPI versions start their own request
        # spans as soon as one is installed, which would duplicate the middleware's server span.
        _provider = provider
        _tracer = provider.get_tracer("stalela", service_version or None)
    return True


def shutdown_tracing() -> None:
    """Flush what is buffered and stop the exporter (end of a server or worker process)."""
    global _provider, _tracer
    with _lock:
        provider, _provider, _tracer = _provider, None, None
    if provider is not None:
        try:
            provider.shutdown()
        except Exception:  # the collector may be gone; never fail a shutdown over traces
            pass


_KINDS = {"internal": "INTERNAL", "server": "SERVER", "client": "CLIENT", "consumer": "CONSUMER",
          "producer": "PRODUCER"}


def _kind(name: str) -> Any:
    from opentelemetry.trace import SpanKind

    return getattr(SpanKind, _KINDS[name])


@contextmanager
def span(name: str, *, kind: str = "internal", attributes: Mapping[str, Any] | None = None) -> Iterator[Any]:
    """A child of the current span; exceptions are recorded and mark it as an error."""
    tracer = _tracer
    if tracer is None:
        yield NOOP_SPAN
        return
    clean = {k: v for k, v in (attributes or {}).items() if v is not None}
    with tracer.start_as_current_span(name, kind=_kind(kind), attributes=clean) as current:
        yield current


_NO_SERVER_SPAN = nullcontext(NOOP_SPAN)  # reusable: entering it does nothing


def server_span(method: str, headers: list[tuple[bytes, bytes]], attributes: Mapping[str, Any]
                ) -> AbstractContextManager[Any]:
    """The span of one HTTP request, continuing the caller's trace when it sent ``traceparent``.
    With tracing off, a context that does nothing (every request enters it: no generator to run)."""
    if _tracer is None:
        return _NO_SERVER_SPAN
    return _server_span(_tracer, method, headers, attributes)


@contextmanager
def _server_span(tracer: Any, method: str, headers: list[tuple[bytes, bytes]], attributes: Mapping[str, Any]
                 ) -> Iterator[Any]:
    from opentelemetry import propagate

    carrier = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in headers
               if k.lower() in (b"traceparent", b"tracestate", b"baggage")}
    parent = propagate.extract(carrier) if carrier else None
    clean = {k: v for k, v in attributes.items() if v is not None}
    with tracer.start_as_current_span(method, context=parent, kind=_kind("server"), attributes=clean,
                                      record_exception=False, set_status_on_exception=False) as current:
        yield current


def mark_error(current: Any, description: str) -> None:
    if current is NOOP_SPAN or _tracer is None:
        return
    from opentelemetry.trace import Status, StatusCode

    current.set_status(Status(StatusCode.ERROR, description))


def record_span(name: str, start_ns: int, end_ns: int, attributes: Mapping[str, Any] | None = None,
                parent: Any = None) -> None:
    """A finished child span, from timestamps taken earlier (seal stages), of ``parent`` (a context
    from ``current_context``) or else of the current span."""
    tracer = _tracer
    if tracer is None:
        return
    s = tracer.start_span(name, context=parent, start_time=start_ns, attributes=dict(attributes or {}))
    s.end(end_time=end_ns)


def current_context() -> Any:
    """The active trace context, to parent spans recorded later in another task (None when off)."""
    if _tracer is None:
        return None
    from opentelemetry import context

    return context.get_current()


def portable(ctx: Any) -> dict[str, str] | None:
    """A context as W3C trace headers, to cross to another process (a sealer: fiscal/invoices/owners.py)."""
    if _tracer is None or ctx is None:
        return None
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=ctx)
    return carrier or None


def from_portable(carrier: dict[str, str] | None) -> Any:
    """The context ``portable`` sent, in this process (None when tracing is off here or nothing came)."""
    if _tracer is None or not carrier:
        return None
    from opentelemetry import propagate

    return propagate.extract(carrier)


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) in hex of the active span, if tracing is on and a span is active."""
    if _tracer is None:
        return None
    from opentelemetry import trace

    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def set_current_attributes(attributes: Mapping[str, Any]) -> None:
    if _tracer is None:
        return
    from opentelemetry import trace

    current = trace.get_current_span()
    if current.is_recording():
        current.set_attributes({k: v for k, v in attributes.items() if v is not None})
