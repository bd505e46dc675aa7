"""The request layer's decisions, without a network: what is retried, how long it waits, which key it sends."""
from __future__ import annotations

import httpx
import pytest

from stalela_sdk import RetryPolicy, errors
from stalela_sdk._http import build_call, retry_delay

POLICY = RetryPolicy(max_retries=3, initial_delay=0.5, max_delay=2.0)


def _response(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers)


def test_idempotency_key_generated_for_posts_that_take_one_only():
    sealed = build_call("POST", "/v1/invoices", json={})
    assert sealed.headers["Idempotency-Key"].startswith("sdk-") and sealed.repeatable
    assert build_call("POST", "/v1/invoices", idempotency_key="k1").headers["Idempotency-Key"] == "k1"
    assert "Idempotency-Key" in build_call("POST", "/v1/tenants").headers
    outlet = build_call("POST", "/v1/outlets", json={})
    assert "Idempotency-Key" not in outlet.headers and not outlet.repeatable
    with pytest.raises(ValueError):
        build_call("POST", "/v1/outlets", idempotency_key="k")
    assert build_call("GET", "/v1/invoices", params={"a": None, "b": True}).params == {"b": "true"}


def test_what_is_retried():
    post = build_call("POST", "/v1/outlets")
    sealed = build_call("POST", "/v1/invoices")
    lost = httpx.RemoteProtocolError("server disconnected")
    assert retry_delay(POLICY, post, 0, error=httpx.ConnectError("refused")) is not None  # never sent
    assert retry_delay(POLICY, post, 0, error=lost) is None  # may have been done: not for a plain POST
    assert retry_delay(POLICY, sealed, 0, error=lost) is not None  # the same key makes it safe
    for status in (429, 503):
        assert retry_delay(POLICY, post, 0, response=_response(status)) is not None
    for status in (502, 504):
        assert retry_delay(POLICY, post, 0, response=_response(status)) is None
        assert retry_delay(POLICY, sealed, 0, response=_response(status)) is not None
    for status in (400, 401, 404, 409, 422, 500):
        assert retry_delay(POLICY, sealed, 0, response=_response(status)) is None
    assert retry_delay(POLICY, sealed, 3, response=_response(503)) is None  # max_retries reached


def test_backoff_is_capped_exponential_with_jitter_and_obeys_retry_after():
    for retry in range(8):
        ceiling = min(POLICY.max_delay, POLICY.initial_delay * 2 ** retry)
        delays = {POLICY.backoff(retry) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays) and len(delays) > 1
    call = build_call("GET", "/v1/outlets")
    assert 7 <= retry_delay(POLICY, call, 0, response=_response(429, **{"Retry-After": "7"})) <= 7.7
    assert retry_delay(POLICY, call, 0, response=_response(503, **{"Retry-After": "3600"})) <= 66


def test_errors_by_status_class_from_problem_json():
    problem = {"type": "https://stalela.dev/problems/x", "title": "t", "status": 422, "code": "invalid_x",
               "field": "lines[0].quantity", "detail": "bad", "errors": [{"field": "f", "code": "c"}],
               "request_id": "r1"}
    for status, cls in ((400, errors.ValidationError), (422, errors.ValidationError),
                        (401, errors.AuthenticationError), (403, errors.PermissionDenied), (404, errors.NotFound),
                        (409, errors.Conflict), (429, errors.RateLimited), (500, errors.ServerError),
                        (503, errors.ServerError), (413, errors.StalelaError)):
        err = errors.error_from_response(httpx.Response(status, json=problem))
        assert type(err) is cls and isinstance(err, errors.StalelaError)
        assert (err.status, err.code, err.field, err.detail, err.request_id) == (
            status, "invalid_x", "lines[0].quantity", "bad", "r1")
        assert err.errors == [{"field": "f", "code": "c"}]
    plain = errors.error_from_response(httpx.Response(502, text="Bad Gateway"))
    assert isinstance(plain, errors.ServerError) and plain.code is None and plain.detail == "Bad Gateway"
