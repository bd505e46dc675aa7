"""Whatever an untrusted client sends to the sealing endpoint, the answer is never a 5xx."""
from __future__ import annotations

import json

from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from fastapi.testclient import TestClient

from stalela.app import create_app
from tests.conftest import OPERATOR_TOKEN
from tests.support.invoices import sample_invoice

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-10**30, max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30),
    st.sampled_from(["B", "N", "TAX", "FA", "1e999", "-0", "0.005", "NaN", "Infinity", "\u0000", "SHOP1-00000001"]),
)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=12), inner, max_size=4), max_leaves=12)

FIELDS = ["type", "price_mode", "lines", "buyer", "nature", "original", "payments", "currency", "exchange", "reference"]
LINE_FIELDS = ["description", "code", "item_type", "tax_group", "quantity", "unit_price"]


@st.composite
def mutated_invoices(draw, outlet_id: str):
    body = sample_invoice(outlet_id)
    for field in draw(st.lists(st.sampled_from(FIELDS), max_size=3, unique=True)):
        body[field] = draw(json_values)
    if isinstance(body.get("lines"), list) and body["lines"] and isinstance(body["lines"][0], dict):
        for field in draw(st.lists(st.sampled_from(LINE_FIELDS), max_size=2, unique=True)):
            body["lines"][0][field] = draw(json_values)
    return body


def _tenant_and_outlet(client: TestClient, tax_id: str, code: str) -> tuple[dict[str, str], dict]:
    r = client.post("/v1/tenants", json={"name": "Fuzz", "tax_id": tax_id, "jurisdiction": "CD"},
                    headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
    headers = {"Authorization": f"Bearer {r.json()['api_key']}", "Content-Type": "application/json"}
    return headers, client.post("/v1/outlets", json={"code": code, "name": "Fuzz"}, headers=headers).json()


def test_random_bodies_never_5xx_and_never_skip_numbers(settings):
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        headers, outlet = _tenant_and_outlet(client, "F1", "FZ")
        sealed = 0

        @hyp_settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
        @given(body=mutated_invoices(outlet["id"]))
        def probe(body):
            nonlocal sealed
            r = client.post("/v1/invoices", content=json.dumps(body), headers=headers)
            assert r.status_code < 500, (body, r.text)
            if r.status_code == 201:
                sealed += 1
                assert r.json()["counter"] == sealed  # rejected requests consumed no number
            else:
                assert r.headers["content-type"].startswith("application/problem+json")
                assert r.json()["code"]

        probe()


def test_random_batches_never_5xx_and_never_skip_numbers(settings):
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        headers, outlet = _tenant_and_outlet(client, "F2", "FB")
        sealed = 0
        keys = st.one_of(st.none(), st.sampled_from(["k1", "k2", ""]), json_values)

        @hyp_settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        @given(items=st.lists(st.one_of(st.fixed_dictionaries({"invoice": mutated_invoices(outlet["id"]),
                                                               "idempotency_key": keys}), json_values),
                              max_size=4))
        def probe(items):
            nonlocal sealed
            r = client.post("/v1/invoices/batch", content=json.dumps({"items": items}), headers=headers)
            assert r.status_code < 500, (items, r.text)
            if r.status_code != 200:
                assert r.headers["content-type"].startswith("application/problem+json") and r.json()["code"]
                return
            for result in r.json()["data"]:
                assert result["status"] < 500, result
                if result["status"] == 201 and not result["replayed"]:
                    sealed += 1
                    assert result["invoice"]["counter"] == sealed  # rejected items consumed no number
                elif result["status"] != 201:
                    assert result["problem"]["code"]

        probe()
