"""Property-based fuzzing of the real gateway and the analytics API: every bad input gets a
clear error in the caller's own format, never a 500.

Bodies start as valid calls (same shape and cross-shape) with one or two parts mutated into
wrong types or values; raw bodies and headers are junk outright (the strategies are in
fuzz_strategies.py). Runs are derandomized, so CI sees the same examples every time.
METIS_FUZZ_EXAMPLES sets the examples per test (150 in the normal suite); a long run such as

    METIS_FUZZ_EXAMPLES=3400 uv run pytest tests/integration/test_gateway_fuzz.py

sends over 10,000 requests to each server.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from tests.integration.fuzz_strategies import (
    ENDPOINTS,
    HEADERS,
    HELLO,
    PARAMS,
    USE_A_TOOL,
    analytics_headers,
    changes,
    edge_moments,
    header_values,
    param_values,
    prompts,
    raw_bodies,
    with_deep_json,
)

FUZZ = settings(
    max_examples=int(os.environ.get("METIS_FUZZ_EXAMPLES") or 150),
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ANTHROPIC_PATHS = ("/v1/messages", "/v1/messages/count_tokens")
# Same shape, alias, prefixed, and the other shape's models (translated by gateway/crossing.py).
ANTHROPIC_MODELS = ("claude-haiku-4-5", "haiku", "anthropic:claude-haiku-4-5", "gpt-5-mini")
OPENAI_MODELS = ("gpt-5-mini", "openai:gpt-5-mini", "haiku", "anthropic:claude-haiku-4-5")


def mutated(body: dict[str, Any], changes: list[tuple[str, Any]]) -> bytes:
    """`body` with fields replaced (None: removed), as the bytes to send."""
    body = dict(body)
    for field, value in changes:
        body.pop(field, None)
        if value is not None:
            body[field] = value
    raw = with_deep_json(json.dumps(body)).encode()  # not orjson: no ints beyond 64 bits
    assume(b"[[fault" not in raw)  # the mock's fault directives ask for 5xx on purpose
    return raw


def check(response: httpx.Response, anthropic_shape: bool) -> None:
    """The property: no 5xx, and an error is JSON in the caller's shape with a message."""
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        check_shape(response, anthropic_shape)


def check_shape(response: httpx.Response, anthropic_shape: bool) -> None:
    body = response.json()
    if anthropic_shape:
        assert body["type"] == "error" and isinstance(body["error"]["type"], str), body
    else:
        assert set(body) == {"error"} and isinstance(body["error"]["type"], str), body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body


@pytest.fixture
def session(gateway, token):
    headers = {"x-api-key": token, "anthropic-version": "2023-06-01"}
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=30) as session:
        yield session


@FUZZ
@given(
    path=st.sampled_from(ANTHROPIC_PATHS),
    model=st.sampled_from(ANTHROPIC_MODELS),
    prompt=prompts,
    changes=changes,
)
def test_a_mutated_anthropic_call_never_gets_a_500(session, path, model, prompt, changes):
    body = {"model": model, "max_tokens": 32, "messages": prompt}
    check(session.post(path, content=mutated(body, changes)), anthropic_shape=True)


@FUZZ
@given(model=st.sampled_from(OPENAI_MODELS), prompt=prompts, changes=changes)
def test_a_mutated_openai_call_never_gets_a_500(session, model, prompt, changes):
    body = {"model": model, "messages": prompt}
    check(
        session.post("/v1/chat/completions", content=mutated(body, changes)), anthropic_shape=False
    )


@FUZZ
@given(
    path=st.sampled_from([*ANTHROPIC_PATHS, "/v1/chat/completions"]),
    raw=raw_bodies,
    headers=st.dictionaries(st.sampled_from(HEADERS), header_values, max_size=3),
)
@example(path="/v1/chat/completions", raw=b"\xff", headers={})
@example(path="/v1/messages", raw=b"[" * 2000 + b"]" * 2000, headers={})
def test_junk_bytes_and_odd_headers_never_get_a_500(session, path, raw, headers):
    assume(b"[[fault" not in raw)
    if not raw:  # an empty body rides on a valid call, to reach the headers
        raw = orjson.dumps({"model": "haiku", "max_tokens": 8, "messages": HELLO})
    response = session.post(path, content=raw, headers=headers)
    check(response, anthropic_shape=path != "/v1/chat/completions")


FAULTS = ("cut:0", "cut:1", "cut:2", "cut:5", "400", "404", "413", "500*1", "529*1", "slow:0.01")


@FUZZ
@given(
    path=st.sampled_from(["/v1/messages", "/v1/chat/completions"]),
    model=st.sampled_from(["haiku", "claude-haiku-4-5", "gpt-5-mini"]),
    stream=st.booleans(),
    fault=st.sampled_from(FAULTS),
)
def test_a_provider_fault_is_answered_in_the_callers_shape(session, path, model, stream, fault):
    """Whatever the provider does, the client gets its answer or JSON in its own shape."""
    prompt = [{"role": "user", "content": f"Say hello [[fault:{fault} id={uuid.uuid4()}]]"}]
    body = {"model": model, "max_tokens": 32, "messages": prompt, "stream": stream}
    response = session.post(path, json=body)
    if stream and response.status_code == 200:
        assert response.headers["content-type"].startswith("text/event-stream")
        return
    assert response.headers["content-type"] == "application/json", response.text
    if response.status_code >= 400:
        check_shape(response, anthropic_shape=path == "/v1/messages")
    # A cut answer is the gateway's 502; the provider's 500 once is retried away.
    assert response.status_code != 500, response.text


def junk_tool_result(content: Any) -> list[dict[str, Any]]:
    result = {"type": "tool_result", "tool_use_id": "t", "is_error": True, "content": content}
    return [{"role": "user", "content": [result]}]


# Found by this module, each a 500 before: (path, model, prompt, extra fields).
FOUND = [
    # Anthropic in, OpenAI out (gateway/shapes/*/requests.py)
    ("/v1/messages", "gpt-5-mini", HELLO, {"tools": True}),
    ("/v1/messages", "gpt-5-mini", HELLO, {"tool_choice": {"type": []}}),
    ("/v1/messages", "gpt-5-mini", HELLO, {"thinking": {"type": "enabled", "budget_tokens": -1}}),
    ("/v1/messages", "gpt-5-mini", junk_tool_result(5), {}),
    ("/v1/messages", "gpt-5-mini", junk_tool_result([{"type": "text", "text": 5}]), {}),
    # OpenAI in, Anthropic out (gateway/shapes/*/requests.py)
    ("/v1/chat/completions", "haiku", HELLO, {"tools": True}),
    ("/v1/chat/completions", "haiku", HELLO, {"tools": ["junk"]}),
    ("/v1/chat/completions", "haiku", [*HELLO, {"role": "assistant", "tool_calls": 5}], {}),
    # The mock provider (mock_provider), relayed as the provider's 500
    ("/v1/messages", "haiku", HELLO, {"tool_choice": {"type": []}}),
    ("/v1/messages", "haiku", USE_A_TOOL, {"tools": [{"name": "f", "input_schema": {"type": {}}}]}),
    ("/v1/messages", "haiku", USE_A_TOOL, {"tools": [{"name": "f", "input_schema": {"enum": 5}}]}),
    ("/v1/messages", "haiku", USE_A_TOOL,
     {"tools": [{"name": "f", "input_schema": {"properties": [1], "required": ["a"]}}]}),
]  # fmt: skip


@pytest.mark.parametrize(("path", "model", "prompt", "extra"), FOUND)
def test_inputs_found_by_fuzzing_get_no_500(session, path, model, prompt, extra):
    body = {"model": model, "max_tokens": 32, "messages": prompt, **extra}
    check(session.post(path, json=body), anthropic_shape=path != "/v1/chat/completions")


def test_a_model_with_control_characters_gets_400_naming_model(session):
    # It was served, and then on PostgreSQL (no NUL in text) the event writer retried
    # that batch for ever, holding back every later event.
    body = {"model": "claude-haiku-4-5\u0000", "max_tokens": 8, "messages": HELLO}
    response = session.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "model"


# ---- the analytics API -------------------------------------------------------------------


PAGES = ("/dashboard/", "/dashboard/?tab=activity", "/dashboard/export/models.csv",
         "/dashboard/export/activity.csv")  # fmt: skip


@pytest.fixture
def analytics(client, settings, db):
    settings.METIS_LOCAL_MODE = True  # set once: each assignment stacks a settings override
    settings.ROOT_URLCONF = "metis_site.urls"
    return client


@FUZZ
@given(
    endpoint=st.sampled_from(ENDPOINTS),
    params=st.dictionaries(st.sampled_from(PARAMS), param_values, max_size=4),
    headers=analytics_headers,
)
def test_analytics_parameters_never_get_a_500(analytics, endpoint, params, headers):
    response = analytics.get(f"/analytics/{endpoint}", params, **headers)
    assert response.status_code in (200, 400, 401, 422), response.content
    if response.status_code == 400:  # only for a version it does not serve
        assert "HTTP_METIS_API_VERSION" in headers and response.json()["detail"]
    if response.status_code == 401:  # only for a bearer token that is not a live key
        assert "HTTP_AUTHORIZATION" in headers and response.json()["detail"]
    if response.status_code == 422:
        # Named: the bad parameter, or the one it needs (`to` alone asks for `from`).
        named = {str(part) for error in response.json()["detail"] for part in error["loc"]}
        assert named & set(PARAMS), response.content


@FUZZ
@given(
    page=st.sampled_from([*PAGES, "/dashboard/export/keys.csv"]),
    tab=st.sampled_from(["cost", "activity", "identity"]),
    params=st.dictionaries(st.sampled_from(["window", "from", "to", "page", "team", "user"]),
                           param_values | edge_moments, max_size=3),
)  # fmt: skip
def test_dashboard_parameters_never_get_a_500(analytics, page, tab, params):
    response = analytics.get(page, {"tab": tab, **params})
    assert response.status_code in (200, 400), response.content


@FUZZ
@given(
    url=st.sampled_from([*(f"/analytics/{e}" for e in ENDPOINTS), *PAGES]),
    start=st.none() | edge_moments,
    end=st.none() | edge_moments | param_values,
)
def test_windows_at_the_ends_of_time_never_get_a_500(analytics, url, start, end):
    params = {name: value for name, value in (("from", start), ("to", end)) if value}
    response = analytics.get(url, params)
    assert response.status_code in (200, 400, 422), response.content


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_filter_with_a_nul_is_a_422_naming_it(analytics, endpoint):
    response = analytics.get(f"/analytics/{endpoint}", {"user": "a\x00b"})
    assert response.status_code == 422, response.content
    assert [error["loc"][-1] for error in response.json()["detail"]] == ["user"]
