"""The openai provider end to end (issue 19, item 6): POST /v1/invoice-drafts {"provider": "llm"} on the app, whose
model is a real chat-completions server on loopback (tests/support/chat_server.py), on SQLite and PostgreSQL.
A server that answers, one that sleeps past the timeout, one that fails or answers no JSON: never a 500."""
from __future__ import annotations

import time
from decimal import Decimal

import pytest
from prometheus_client import REGISTRY

from tests.assistants.test_drafts_api import TEXT, shop  # noqa: F401  (the fixture)
from tests.conftest import make_settings
from tests.support.chat_server import chat_server

pytest.importorskip("pydantic_ai", reason="the optional extra stalela[ai] (make test installs it)")
TIMEOUT = 3.0  # short enough to test, long enough for a loaded 2-core machine to answer in time
SLACK = 2.0  # the app's own work, and a loaded 2-core machine
CEMENT = {"buyer_name": "Kin Marché SARL", "buyer_tax_id": "A1234567Z", "buyer_is_company": True,
          "currency": "CDF", "lines": [{"description": "ciment", "quantity": "3", "unit": "sacs",
                                        "unit_price": "25000", "service": False}],
          "tax_rate": None, "tax_exempt": False, "prices_include_tax": None, "due_date": None}


@pytest.fixture(scope="module")
def chat():
    with chat_server() as state:
        yield state


@pytest.fixture
def settings(database_url, tmp_path, chat):
    chat.reset()
    return make_settings(database_url, tmp_path, llm_provider="openai", llm_model="qwen2.5:7b",
                         llm_base_url=chat.base_url, llm_api_key="sk-local-test", llm_timeout_seconds=TIMEOUT)


def observed(provider, outcome):
    labels = {"provider": provider, "outcome": outcome}
    return REGISTRY.get_sample_value("invoice_draft_duration_seconds_count", labels) or 0.0


async def ask(client, headers, provider="llm", text=TEXT):
    started = time.perf_counter()
    r = await client.post("/v1/invoice-drafts", json={"text": text, "locale": "fr", "provider": provider},
                          headers=headers)
    return r, time.perf_counter() - started


async def test_the_openai_provider_drafts_through_base_url(client, shop, chat):
    tenant, person, outlet = shop
    chat.answer = CEMENT
    before = observed("llm", "accepted")
    r, _ = await ask(client, person)
    assert r.status_code == 201, r.text
    d = r.json()
    assert d["provider"] == "llm" and d["parser_version"].startswith("llm-1.0.0+rules-")
    assert d["invoice"]["outlet_id"] == outlet["id"] and d["invoice"]["buyer"]["tax_id"] == "A1234567Z"
    assert Decimal(d["totals"]["total"]) == 87000  # 3 x 25 000 + TVA 16 %: the engine's, never the model's
    assert float(d["confidence"]) >= 0.85 and d["questions"] == []
    assert any("the draft is the rule parser's" in reason for reason in d["reasons"])  # full agreement
    sent = chat.requests[0]
    assert sent["authorization"] == "Bearer sk-local-test" and sent["body"]["model"] == "qwen2.5:7b"
    assert sent["body"]["messages"][-1] == {"role": "user", "content": TEXT}
    assert sent["body"]["response_format"]["type"] == "json_schema"
    assert observed("llm", "accepted") == before + 1
    stored = (await client.get(f"/v1/invoice-drafts/{d['id']}", headers=person)).json()
    assert stored["provider"] == "llm" and stored["reasons"] == d["reasons"]


async def test_a_model_disagreeing_with_the_rules_is_refused_and_stored(client, shop, chat):
    tenant, person, outlet = shop
    chat.answer = CEMENT | {"lines": [{**CEMENT["lines"][0], "unit_price": "2500"}]}
    before = observed("llm", "refused")
    r, _ = await ask(client, person)
    assert r.status_code == 422 and r.json()["code"] == "draft_low_confidence", r.text
    d = r.json()["draft"]
    assert d["provider"] == "llm" and d["invoice"]["lines"][0]["unit_price"] == "2500"
    assert any("the model read '2500', the rule parser '25000'" in q for q in d["questions"])
    assert observed("llm", "refused") == before + 1


@pytest.mark.parametrize("failure, reason", [
    ({"delay": TIMEOUT + 2}, "timeout"),
    ({"status": 500}, "provider_error"),
    ({"broken_body": True}, "provider_error"),  # HTTP 200 whose body is not JSON
    ({"content": '{"lines": "three sacks"}'}, "invalid_output"),  # JSON out of schema, twice
])
async def test_a_failing_model_falls_back_to_the_rules(client, shop, chat, failure, reason):
    tenant, person, outlet = shop
    chat.answer = CEMENT
    for name, value in failure.items():
        setattr(chat, name, value)
    before = observed("llm", "fallback")
    r, elapsed = await ask(client, person)
    assert r.status_code == 201, r.text  # the rules' draft of this text is accepted
    d = r.json()
    assert d["provider"] == "rules" and d["parser_version"].startswith("rules-")
    assert d["reasons"][0].startswith(f"provider.fallback: {reason} (asked: llm, openai:qwen2.5:7b")
    # The provider's own words (its error body may name the operator's account) stay in the operator's log.
    assert not any("crashed" in line for line in d["reasons"])
    assert Decimal(d["totals"]["total"]) == 87000
    assert elapsed < TIMEOUT + SLACK, elapsed
    assert observed("llm", "fallback") == before + 1
    assert len(chat.requests) == (2 if reason == "invalid_output" else 1)  # one retry with the error, no more


async def test_the_rules_provider_is_observed_too(client, shop, chat):
    tenant, person, outlet = shop
    before = observed("rules", "accepted")
    r, _ = await ask(client, person, provider="rules")
    assert r.status_code == 201 and r.json()["provider"] == "rules" and chat.requests == []
    assert observed("rules", "accepted") == before + 1
