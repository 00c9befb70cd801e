"""Inputs that once got Django's HTML 500: each now gets JSON in the caller's shape."""

from __future__ import annotations

import json

import pytest

from tests.integration.test_gateway_errors import (
    ANTHROPIC_BODY,
    OPENAI_BODY,
    is_anthropic_error,
    is_openai_error,
    post,
    with_fault,
)


def nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


# (path, body): the model is an alias (the body is rewritten), or of the other shape.
CUT_CALLS = [
    ("/v1/messages", ANTHROPIC_BODY),
    ("/v1/chat/completions", OPENAI_BODY),
    ("/v1/chat/completions", {**OPENAI_BODY, "model": "haiku"}),
    ("/v1/messages", {**ANTHROPIC_BODY, "model": "gpt-5-mini"}),
]


@pytest.mark.parametrize(("path", "body"), CUT_CALLS)
def test_an_answer_cut_mid_body_is_a_502_in_the_callers_shape_recorded_once(
    gateway, token, path, body
):
    response = post(gateway, path, token, json={**body, "messages": with_fault("cut:1")})
    assert response.status_code == 502, response.text
    assert response.headers["content-type"] == "application/json"
    if path == "/v1/messages":
        assert is_anthropic_error(response, "api_error")
    else:
        assert is_openai_error(response)
    assert "broke off" in response.json()["error"]["message"]
    (event,) = gateway.events("llm.call_completed")
    assert (event["status"], event["error_class"]) == (502, "UPSTREAM_ERROR")


DEEP = [
    ("/v1/messages", {**ANTHROPIC_BODY, "metadata": nested(300)}),  # alias: re-encoded
    ("/v1/chat/completions", {**OPENAI_BODY, "stream": True, "metadata": nested(300)}),
    ("/v1/messages", {**ANTHROPIC_BODY, "model": "gpt-5-mini", "messages": [
        {"role": "user", "content": "Use the tool"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": nested(600)}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]},
    ]}),
    ("/v1/messages", {**ANTHROPIC_BODY, "metadata": "DEEP"}),  # the deepest orjson reads
]  # fmt: skip


@pytest.mark.parametrize(("path", "body"), DEEP)
def test_json_nested_too_deeply_is_a_400_in_the_callers_shape(gateway, token, path, body):
    raw = json.dumps(body).replace('"DEEP"', "[" * 1000 + "]" * 1000)
    response = post(gateway, path, token, content=raw)
    assert response.status_code == 400, response.text
    if path == "/v1/messages":
        assert is_anthropic_error(response, "invalid_request_error")
    else:
        assert is_openai_error(response)
    assert "nested too deeply" in response.json()["error"]["message"]


@pytest.fixture
def analytics(client, settings, db):
    settings.METIS_LOCAL_MODE = True
    settings.ROOT_URLCONF = "metis_site.urls"
    return client


EDGES = [
    ({"from": "0001-01-01T00:00:00+14:00"}, "from"),
    ({"from": "2026-01-01", "to": "9999-12-31T23:59:59-14:00"}, "to"),
    ({"from": "0001-01-01T00:00:00+00:01"}, "from"),
]


@pytest.mark.parametrize(("params", "named"), EDGES)
@pytest.mark.parametrize("endpoint", ["cost", "by_key", "by_user", "by_team", "activity"])
def test_a_moment_outside_utc_range_is_a_422_naming_it(analytics, endpoint, params, named):
    response = analytics.get(f"/analytics/{endpoint}", params)
    assert response.status_code == 422, response.content
    assert [e["loc"][-1] for e in response.json()["detail"]] == [named]


PAGES = ["/dashboard/", "/dashboard/?tab=activity", "/dashboard/export/models.csv",
         "/dashboard/export/activity.csv"]  # fmt: skip


@pytest.mark.parametrize(("params", "named"), EDGES)
@pytest.mark.parametrize("url", PAGES)
def test_the_dashboard_and_exports_answer_400_for_the_same_edges(analytics, url, params, named):
    response = analytics.get(url, params)
    assert response.status_code == 400
    assert response.content.decode().startswith(f"{named}:")


@pytest.mark.parametrize("params", [
    {"from": "0001-01-01", "to": "9999-12-31T23:59:59"},
    {"from": "0001-01-01T00:00:00-14:00", "to": "9999-12-31T23:59:59+14:00"},
    {"from": "9999-12-31T00:00:00"},
])  # fmt: skip
@pytest.mark.parametrize("url", ["/analytics/cost", "/analytics/cost?group_by=day",
                                 "/analytics/activity", "/dashboard/",
                                 "/dashboard/export/activity.csv"])  # fmt: skip
def test_the_widest_windows_are_served_or_refused_never_a_500(analytics, url, params):
    response = analytics.get(url, params)
    assert response.status_code in (200, 400, 422), response.content


def test_an_unknown_analytics_path_is_a_json_404(analytics):
    response = analytics.get("/analytics/nope")
    assert response.status_code == 404
    assert response.json()["detail"]


def test_the_dashboards_404_stays_a_page(analytics):
    response = analytics.get("/dashboard/export/nope.csv")
    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")
