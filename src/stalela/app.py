"""The FastAPI application factory: mounts every domain's router and the one error handler."""
from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from stalela import __version__
from stalela.config import Settings, get_settings
from stalela.db.session import Database
from stalela.fiscal.invoices.group_commit import Sealer
from stalela.fiscal.signing.registry import backend_for
from stalela.db.outages import is_outage
from stalela.errors import (BadRequest, Forbidden, NotFound, PayloadTooLarge, ServiceUnavailable, StalelaError,
                            Unauthorized, UnsupportedMediaType, validation_problem)
from stalela.auth.service import API_KEYS
from stalela.auth.throttle import Limiter
from stalela.auth.tokens import ensure_key as ensure_token_key
from stalela.kit import apidocs, openapi, routeindex
from stalela.kit.problems import problem_response
from stalela.observability import runtime as observability
from stalela.observability.logging import get_logger
from stalela.observability.middleware import BodyGuardMiddleware, RequestContextMiddleware
from stalela.workers import background  # the composition root of the outbox handlers too
from stalela.controlplane.dataplane import janitor as fleet_janitor
from stalela.connectors.tasks import spool_drainer

# The composition root of the scrape-time gauges: importing a domain's gauges module registers its
# figures with observability (observability/scrape.py), which knows no domain itself.
from stalela.outbox import gauges as _outbox_gauges  # noqa: F401
from stalela.tenancy import gauges as _tenancy_gauges  # noqa: F401
from stalela.fiscal.invoices import gauges as _invoices_gauges  # noqa: F401
from stalela.authority import gauges as _authority_gauges  # noqa: F401
from stalela.privacy import erasure_gauges as _erasure_gauges  # noqa: F401
from stalela.billing import usage_gauges as _usage_gauges  # noqa: F401
from stalela.billing.usage_metering import ApiCallCounter, ApiCallMeter, api_call_metering
from stalela.billing import api_quota as _api_quota  # noqa: F401  (registers the api_calls quota's request gate)
from stalela.privacy.erasure_service import replay_journal
from stalela.assistants.providers import warm as warm_llm_provider

log = get_logger("stalela.app")


def _malformed_json() -> StalelaError:
    return BadRequest("the request body is not valid JSON", code="malformed_json")


def _validation_problem(exc: RequestValidationError) -> StalelaError:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return _malformed_json()
    return validation_problem(errors)


_HTTP_TITLES = {400: BadRequest.title, 401: Unauthorized.title, 403: Forbidden.title, 404: NotFound.title,
                405: "Method not allowed", 413: PayloadTooLarge.title, 415: UnsupportedMediaType.title}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StalelaError)
    async def _stalela(request: Request, exc: StalelaError):
        if isinstance(exc, ServiceUnavailable):
            # Expected while a dependency is away, and said once per request: a warning, no stack trace.
            log.warning(exc.code, path=request.url.path, cause=exc.cause())
        return problem_response(exc, request)

    @app.exception_handler(DBAPIError)
    @app.exception_handler(SQLAlchemyTimeoutError)
    @app.exception_handler(OSError)
    async def _database(request: Request, exc: Exception):
        # What reached the database outside Database.transaction (which types its outages itself).
        if not is_outage(exc):
            return await _unexpected(request, exc)
        error = request.app.state.db.unavailable()
        error.__cause__ = exc
        return await _stalela(request, error)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        return problem_response(_validation_problem(exc), request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        if isinstance(exc.__cause__, StalelaError):  # e.g. body limit hit while FastAPI read the body
            return problem_response(exc.__cause__, request)
        if exc.status_code == 400 and exc.__cause__ is not None:
            # FastAPI turns what json.loads raises besides JSONDecodeError (UnicodeDecodeError for invalid
            # UTF-8, RecursionError for deep nesting, ValueError for an integer of thousands of digits or
            # for NaN and Infinity, which kit/jsonbody.py refuses for every route) into a bare 400 caused
            # by it: to the client, all of them are a body that is not JSON.
            return problem_response(_malformed_json(), request)
        if exc.status_code == 404 and request.url.path.startswith(("/app/", "/ops/")):
            # A person typed or followed a console address: an HTML page in their language, not JSON.
            from stalela.dashboard.web import not_found_page

            return not_found_page(request)
        codes = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 413: "payload_too_large", 415: "unsupported_media_type"}
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = openapi.allowed_methods(request.app, request.url.path) or headers.get("Allow", "")
        err = StalelaError(str(exc.detail), code=codes.get(exc.status_code, f"http_{exc.status_code}"),
                           headers=headers)
        err.status = exc.status_code
        # The same titles as our own errors' (so the catalogs translate them), else Starlette's reason.
        err.title = _HTTP_TITLES.get(exc.status_code, str(exc.detail))
        return problem_response(err, request)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unhandled_error", path=request.url.path)
        return problem_response(StalelaError("an unexpected error occurred; it has been logged"), request)


async def _cancelled(task: asyncio.Task) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    observability.configure(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.db = Database.from_settings(settings)
        app.state.limiter = Limiter(settings)
        app.state.sealer = Sealer(app.state.db, settings)
        await app.state.sealer.start()
        API_KEYS.ttl = settings.auth_cache_seconds
        API_KEYS.clear()
        # Fail at start, not on the first seal, if the key store is misconfigured.
        backend_for(settings)
        warm_llm_provider(settings)  # the optional LLM of drafting: imported now, not in a draft's timeout
        await ensure_token_key(app.state.db, settings)
        # A database restored from a backup gets every later erasure back before it serves.
        await replay_journal(app.state.db, settings)
        try:
            async with AsyncExitStack() as stack:
                await stack.enter_async_context(observability.app_lifespan(app, settings))
                if settings.usage_metering:
                    await stack.enter_async_context(api_call_metering(app.state.db, settings, app.state.api_calls))
                if settings.inprocess_workers:
                    await stack.enter_async_context(background(app.state.db, settings))
                if app.state.mcp is not None:  # the SDK's task group, which its HTTP endpoint needs
                    await stack.enter_async_context(app.state.mcp.running())
                evictor = asyncio.create_task(fleet_janitor(app.state.db), name="fleet-janitor")
                stack.push_async_callback(_cancelled, evictor)
                # Webhooks spooled to this process's disk during a database outage (connectors/spool.py).
                drainer = asyncio.create_task(spool_drainer(app.state.db, settings), name="connector-spool")
                stack.push_async_callback(_cancelled, drainer)
                observability.settle_heap()  # also turns the collector back on: stalela.asgi stops it to load
                yield
        finally:
            await app.state.sealer.close()  # peers' requests in flight are answered first
            await app.state.limiter.close()
            await app.state.db.dispose()

    app = FastAPI(
        title="Stalela",
        version=__version__,
        description="Multi-tenant fiscal cloud: sealed, verifiable invoices.",
        lifespan=lifespan,
        docs_url=None, redoc_url=None,  # served by kit.apidocs from vendored assets (no CDN)
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(BodyGuardMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware)
    app.state.api_calls = ApiCallCounter()  # usage metering: API calls per tenant, flushed by the lifespan
    if settings.usage_metering:
        app.add_middleware(ApiCallMeter, counter=app.state.api_calls)

    from stalela.health.endpoints import router as health_router
    from stalela.observability.endpoints import router as metrics_router
    from stalela.accounts.endpoints import router as tenancy_router

    app.include_router(health_router)
    app.include_router(apidocs.router)
    app.include_router(metrics_router)
    app.include_router(tenancy_router)
    for router in extra_routers():
        app.include_router(router)
    openapi.install(app)
    app.state.mcp = _mount_mcp(app, settings) if settings.mcp_enabled else None
    if settings.bench_endpoints:
        from stalela.health.endpoints import bench_router

        app.include_router(bench_router)
    routeindex.install(app)  # last: it indexes the routes the app holds now
    return app


def _mount_mcp(app: FastAPI, settings: Settings) -> Any:
    """The MCP server at /mcp (docs/assistants.md), over the same services as the routes above."""
    from stalela.assistants import mcp_runtime, mcp_server

    mounted = mcp_server.Mounted(mcp_server.build(mcp_runtime.Runtime(settings, app.openapi, lambda: app.state)),
                                 settings)
    app.router.routes.extend(mounted.routes())
    return mounted


def extra_routers() -> list:
    from stalela.fiscal.invoices.endpoints import public_router as verification_router
    from stalela.fiscal.invoices.endpoints import ledger_router as proof_router
    from stalela.fiscal.invoices.endpoints import router as invoices_router
    from stalela.fiscal.ledger.endpoints import router as ledger_router
    from stalela.fiscal.signing.endpoints import router as keys_router
    from stalela.authority.endpoints import router as authority_router
    from stalela.authority.arca.endpoints import router as arca_router
    from stalela.outbox.endpoints import router as outbox_router
    from stalela.fiscal.reports.endpoints import exports_router
    from stalela.fiscal.reports.endpoints import routers as reports_routers
    from stalela.auth.endpoints import router as auth_router
    from stalela.accounts.audit_endpoints import router as audit_router
    from stalela.accounts.logo_endpoints import router as logo_router
    from stalela.webhooks.endpoints import router as webhooks_router
    from stalela.offline.device_endpoints import router as devices_router
    from stalela.offline.batch_endpoints import router as offline_batches_router
    from stalela.offline.status_endpoints import router as status_lists_router
    from stalela.dashboard.endpoints import routers as dashboard_routers
    from stalela.privacy.erasure_endpoints import router as erasure_router
    from stalela.privacy.offboarding_endpoints import router as offboarding_router
    from stalela.privacy.retention_endpoints import invoice_router as invoice_deletion_router
    from stalela.privacy.retention_endpoints import router as retention_router
    from stalela.privacy.export_endpoints import router as privacy_exports_router
    from stalela.billing.rating_endpoints import ops_router as billing_ops_router
    from stalela.billing.rating_endpoints import router as billing_quotas_router
    from stalela.billing.bill_endpoints import ops_router as bills_ops_router
    from stalela.billing.bill_endpoints import router as bills_router
    from stalela.billing.anomaly_endpoints import ops_router as ops_anomalies_router
    from stalela.billing.anomaly_endpoints import router as anomalies_router
    from stalela.billing.usage_endpoints import router as usage_router
    from stalela.controlplane.endpoints import router as registry_router
    from stalela.controlplane.move_endpoints import router as moves_router
    from stalela.controlplane.operator_endpoints import router as operators_router
    from stalela.offline.void_endpoints import router as offline_blocks_router
    from stalela.assistants.endpoints import router as drafts_router
    from stalela.connectors.endpoints import inbound as connector_webhooks_router
    from stalela.connectors.endpoints import router as connections_router
    from stalela.analytics.endpoints import router as analytics_router

    return [registry_router, moves_router, invoices_router, ledger_router, proof_router, exports_router, keys_router, verification_router, outbox_router, authority_router,
            arca_router,
            auth_router, audit_router, *reports_routers, webhooks_router, erasure_router, offboarding_router,
            invoice_deletion_router, retention_router, privacy_exports_router, usage_router,
            billing_ops_router, billing_quotas_router, bills_router, bills_ops_router, anomalies_router,
            ops_anomalies_router, operators_router, logo_router, devices_router, status_lists_router,
            offline_blocks_router, offline_batches_router, drafts_router, connections_router, analytics_router,
            connector_webhooks_router, *dashboard_routers]
