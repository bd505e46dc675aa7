"""/metrics in-process: access control, the series a seal feeds, commit-time counting, cardinality."""
from __future__ import annotations

import uuid

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from stalela.app import create_app
from stalela.observability import metrics
from stalela.outbox.registry import handles
from stalela.outbox.service import enqueue
from stalela.tenancy.context import bind_platform
from tests.conftest import OPERATOR_TOKEN, make_settings
from tests.support.invoices import sample_invoice

METRICS_TOKEN = "metrics-token-for-tests"
AUTH = {"Authorization": f"Bearer {METRICS_TOKEN}"}


def scrape_text(text: str) -> dict[str, list]:
    """family name -> samples, as Prometheus would read them."""
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


def value(samples: dict[str, list], name: str, **labels: str) -> float | None:
    for s in samples.get(name, []):
        if all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return None


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
async def world(database_url, tmp_path):
    settings = make_settings(database_url, tmp_path, metrics_token=METRICS_TOKEN, metrics_cache_seconds=0)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            r = await client.post("/v1/tenants", json={"name": "Metrics SARL", "tax_id": "M1"},
                                  headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
            tenant, key = r.json()["tenant"], {"Authorization": f"Bearer {r.json()['api_key']}"}
            outlet = (await client.post("/v1/outlets", json={"code": f"M{uuid.uuid4().hex[:6]}", "name": "M"},
                                        headers=key)).json()
            yield {"app": app, "client": client, "tenant": tenant, "key": key, "outlet": outlet}


async def test_metrics_need_the_metrics_token_not_a_tenant_or_operator_credential(world):
    c = world["client"]
    assert (await c.get("/metrics")).status_code == 401
    assert (await c.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 401
    assert (await c.get("/metrics", headers=world["key"])).status_code == 401
    assert (await c.get("/metrics", headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})).status_code == 401
    r = await c.get("/metrics", headers=AUTH)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "/metrics" not in (await c.get("/openapi.json")).json()["paths"]
    om = await c.get("/metrics", headers=AUTH | {"Accept": "application/openmetrics-text; version=1.0.0"})
    assert om.headers["content-type"].startswith("application/openmetrics-text") and om.text.endswith("# EOF\n")


async def test_metrics_are_off_without_a_token(database_url, tmp_path):
    app = create_app(make_settings(database_url, tmp_path))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            r = await c.get("/metrics", headers=AUTH)
    assert r.status_code == 404 and r.json()["code"] == "metrics_disabled"


async def test_a_seal_feeds_its_series(world):
    c, tenant_id, outlet_id = world["client"], world["tenant"]["id"], world["outlet"]["id"]
    stages_before = {s: sample("seal_duration_seconds_count", stage=s) for s in ("validate", "number", "sign", "store")}
    signed_before = sample("signer_operations_total", backend="software", result="ok")
    for _ in range(3):
        assert (await c.post("/v1/invoices", json=sample_invoice(outlet_id), headers=world["key"])).status_code == 201
    bad = sample_invoice(outlet_id, lines=[])
    assert (await c.post("/v1/invoices", json=bad, headers=world["key"])).status_code == 422

    assert sample("invoices_sealed_total", tenant_id=tenant_id, outlet_id=outlet_id, type="FV") == 3
    assert sample("api_requests_total", method="POST", endpoint="/v1/invoices", status="201", tenant_id=tenant_id) == 3
    assert sample("api_requests_total", method="POST", endpoint="/v1/invoices", status="422", tenant_id=tenant_id) == 1
    for stage, before in stages_before.items():
        assert sample("seal_duration_seconds_count", stage=stage) == before + 3, stage
    assert sample("signer_operations_total", backend="software", result="ok") == signed_before + 3

    scraped = scrape_text((await c.get("/metrics", headers=AUTH)).text)
    assert value(scraped, "fiscal_counter_value", tenant_id=tenant_id, outlet_id=outlet_id) == 3
    assert value(scraped, "tenant_count", status="active") >= 1
    assert value(scraped, "outbox_pending", topic="invoice.sealed") >= 3
    assert value(scraped, "outbox_oldest_pending_seconds", topic="invoice.sealed") >= 0
    assert value(scraped, "authority_sync_pending", status="pending") >= 3
    assert value(scraped, "metrics_scrape_errors") == 0
    assert value(scraped, "invoices_sealed_total", tenant_id=tenant_id, outlet_id=outlet_id, type="FV") == 3
    # cost_anomalies_total is labelled: its series appear with the first anomaly (tests/billing/test_anomaly_*).


async def test_a_seal_is_counted_at_commit_never_on_rollback(db):
    from stalela.observability.metrics import after_commit

    calls: list[str] = []
    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            after_commit(session, lambda: calls.append("rolled back"))
            raise RuntimeError("the request failed after the flush")
    async with db.transaction() as session:
        after_commit(session, lambda: calls.append("committed"))
        assert calls == []
    assert calls == ["committed"]


def unthrottled() -> dict:
    """No per-key rate limit in the way of a thousand requests (when the setting exists)."""
    from stalela.config import Settings

    return {"rate_limit_burst": 100_000} if "rate_limit_burst" in Settings.model_fields else {}


async def test_1000_invoice_ids_do_not_make_1000_series(_sqlite_url, tmp_path):
    settings = make_settings(_sqlite_url, tmp_path, metrics_token=METRICS_TOKEN, **unthrottled())
    app = create_app(settings)

    def series() -> set[tuple]:
        return {(s.name, tuple(sorted(s.labels.items()))) for f in REGISTRY.collect() for s in f.samples
                if f.name.startswith("api_request")}

    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            r = await c.post("/v1/tenants", json={"name": "Many SARL", "tax_id": "M2"},
                             headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
            key = {"Authorization": f"Bearer {r.json()['api_key']}"}
            await c.get("/v1/invoices/inv_warmup", headers=key)
            await c.get("/verify/inv_warmup")
            await c.get("/no/such/path/warmup")
            before = series()
            ids = [f"inv_{uuid.uuid4().hex}" for _ in range(1000)]
            for invoice_id in ids:
                assert (await c.get(f"/v1/invoices/{invoice_id}", headers=key)).status_code == 404
            for invoice_id in ids[:300]:
                await c.get(f"/verify/{invoice_id}")
                await c.get(f"/no/such/path/{invoice_id}")
            after = series()
            text = (await c.get("/metrics", headers=AUTH)).text
    assert len(after - before) <= 3, sorted(after - before)[:10]  # at most the /metrics scrape's own series
    assert not any(i in text for i in ids)
    endpoints = {dict(labels).get("endpoint") for _, labels in after}
    assert {"/v1/invoices/{invoice_id}", "/verify/{invoice_id}", "<unrouted>"} <= endpoints


async def test_tenant_labels_can_be_folded(_sqlite_url, tmp_path):
    settings = make_settings(_sqlite_url, tmp_path, metrics_token=METRICS_TOKEN, metrics_tenant_labels=False,
                             metrics_cache_seconds=0)
    app = create_app(settings)
    try:
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
                r = await c.post("/v1/tenants", json={"name": "Folded SARL", "tax_id": "M3"},
                                 headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
                key = {"Authorization": f"Bearer {r.json()['api_key']}"}
                before = sample("api_requests_total", method="GET", endpoint="/v1/outlets", status="200", tenant_id="*")
                await c.get("/v1/outlets", headers=key)
                assert sample("api_requests_total", method="GET", endpoint="/v1/outlets", status="200",
                              tenant_id="*") == before + 1
                scraped = scrape_text((await c.get("/metrics", headers=AUTH)).text)
        assert "fiscal_counter_value" not in scraped and value(scraped, "tenant_count", status="active") >= 1
    finally:
        metrics.configure(tenant_labels=True)


@handles("test.observability.fails")
async def _always_fails(ctx, event):  # noqa: ANN001
    raise RuntimeError("handler failure for the metrics test")


async def test_outbox_handlers_and_dead_letters_are_counted(fresh_database_url, tmp_path):
    from stalela.db.session import Database
    from stalela.outbox.dispatcher import Dispatcher

    settings = make_settings(fresh_database_url, tmp_path, outbox_max_attempts=1, metrics_token=METRICS_TOKEN,
                             metrics_cache_seconds=0)
    topic = "test.observability.fails"
    db = Database.from_settings(settings)
    try:
        async with db.transaction() as session:
            await bind_platform(session)
            enqueue(session, "ten_observability", topic, {"invoice_id": "inv_x"})
        handler = "tests.observability.test_metrics._always_fails"
        errors_before = sample("outbox_handled_total", topic=topic, handler=handler, result="error")
        dead_before = sample("outbox_dead_total", topic=topic)
        dispatcher = Dispatcher(db, settings)
        assert await dispatcher.run_once() == 1
        assert sample("outbox_handled_total", topic=topic, handler=handler, result="error") == errors_before + 1
        assert sample("outbox_dead_total", topic=topic) == dead_before + 1
        assert sample("outbox_handler_duration_seconds_count", topic=topic, handler=handler) >= 1
    finally:
        await db.dispose()
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            scraped = scrape_text((await c.get("/metrics", headers=AUTH)).text)
    assert value(scraped, "outbox_dead_letters", topic=topic) == 1
    assert value(scraped, "outbox_pending", topic=topic) == 0


def test_every_family_is_named_once():
    names = metrics.metric_names()
    required = {"api_requests_total", "api_request_duration_seconds", "invoices_sealed_total", "seal_duration_seconds",
                "fiscal_counter_value", "outbox_pending", "outbox_oldest_pending_seconds", "outbox_dead_total",
                "authority_sync_lag_seconds", "authority_requests_total", "webhook_deliveries_total",
                "webhook_delivery_duration_seconds", "tenant_count", "tenant_resource_usage", "cost_anomalies_total",
                "signer_operations_total"}
    assert required <= set(names), required - set(names)
    assert metrics.LATENCY_BUCKETS[0] == 0.001 and 5.0 in metrics.LATENCY_BUCKETS


@pytest.mark.parametrize("amount", [0.00003, 0.0004, 0.003, 2.0, 50.0])
def test_a_group_lap_counts_one_observation_per_invoice(amount):
    """A stage timed once for a group of n is n observations, exactly as n calls of observe would be."""
    from prometheus_client import CollectorRegistry, Histogram

    registry = CollectorRegistry()
    at_once = Histogram("at_once", "", ["stage"], buckets=metrics.STAGE_BUCKETS, registry=registry)
    one_by_one = Histogram("one_by_one", "", ["stage"], buckets=metrics.STAGE_BUCKETS, registry=registry)
    metrics._observe_many(at_once.labels("sign"), amount, 37)
    for _ in range(37):
        one_by_one.labels("sign").observe(amount)
    metrics._observe_many(at_once.labels("sign"), amount, 1)
    one_by_one.labels("sign").observe(amount)
    for suffix in ("_count", "_bucket"):
        for le in [*(str(b) for b in metrics.STAGE_BUCKETS), "+Inf"] if suffix == "_bucket" else [None]:
            labels = {"stage": "sign", **({"le": le} if le else {})}
            assert registry.get_sample_value("at_once" + suffix, labels) == \
                registry.get_sample_value("one_by_one" + suffix, labels), (suffix, le)
    assert registry.get_sample_value("at_once_sum", {"stage": "sign"}) == pytest.approx(
        registry.get_sample_value("one_by_one_sum", {"stage": "sign"}))
