"""GET /metrics: bounded labels whatever model names clients send, and who may read it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.integration.test_gateway_errors import ANTHROPIC_BODY

NAMES = 5000


def series(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_five_thousand_model_names_leave_metrics_bounded(gateway, token):
    headers = {"x-api-key": token}
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=30) as client:
        client.post("/v1/messages", json=ANTHROPIC_BODY)  # the known model's series exist
        before = series(client.get("/metrics").text)

        def call(i: int) -> int:
            body = {**ANTHROPIC_BODY, "model": f"claude-probe-{i}"}
            return client.post("/v1/messages", json=body).status_code

        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(call, range(NAMES)))
        after = client.get("/metrics").text
    assert statuses.count(200) == NAMES  # routed by their claude- prefix, answered by the mock
    assert "claude-probe" not in after
    assert 'model="other"' in after
    # One new set of series for `other`, whatever the number of names: before the fix, 29
    # per name (145,000).
    assert len(series(after)) - len(before) < 40, len(series(after))


def test_a_dated_version_counts_under_its_base_model(gateway, token):
    body = {**ANTHROPIC_BODY, "model": "claude-haiku-4-5-20251001"}
    assert httpx.post(
        f"{gateway.url}/v1/messages", json=body, headers={"x-api-key": token}
    ).is_success
    text = httpx.get(f"{gateway.url}/metrics").text
    assert 'model="claude-haiku-4-5"' in text and "20251001" not in text


def test_metrics_for_a_forwarded_peer_is_403_json(gateway):
    # uvicorn takes the client address from X-Forwarded-For when the proxy is on loopback:
    # this is what a reverse proxy on the same host looks like.
    response = httpx.get(f"{gateway.url}/metrics", headers={"x-forwarded-for": "203.0.113.9"})
    assert response.status_code == 403
    assert response.json()["error"]["message"].startswith("GET /metrics answers loopback")


def test_metrics_with_a_token_configured_needs_that_bearer(gateway, settings):
    settings.METIS_METRICS_TOKEN = "scrape-me"
    refused = httpx.get(f"{gateway.url}/metrics")
    assert refused.status_code == 401
    assert refused.json()["error"]["message"]
    wrong = httpx.get(f"{gateway.url}/metrics", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401
    remote = {"authorization": "Bearer scrape-me", "x-forwarded-for": "203.0.113.9"}
    answered = httpx.get(f"{gateway.url}/metrics", headers=remote)
    assert answered.status_code == 200 and "metis_calls_in_flight" in answered.text
