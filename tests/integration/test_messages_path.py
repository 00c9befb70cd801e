"""`POST /messages` (no /v1), Metrion's direct-HTTP path, is `/v1/messages` in every way."""

from __future__ import annotations

import httpx
import orjson

from tests.integration.payloads import HELLO

BODY = {"model": "haiku", "max_tokens": 64, "messages": HELLO}


def headers(token: str) -> dict[str, str]:
    return {"x-api-key": token, "anthropic-version": "2023-06-01"}


def test_a_message_is_answered_and_recorded_as_on_v1_messages(gateway, token):
    response = httpx.post(f"{gateway.url}/messages?beta=true", json=BODY, headers=headers(token))

    assert response.status_code == 200, response.text
    assert response.json()["type"] == "message"
    assert response.headers["x-metis-request-id"].startswith("metis_")
    (sent,) = gateway.upstream_requests()
    assert (sent["path"], sent["query"]) == ("/v1/messages", "beta=true")
    (completed,) = gateway.events("llm.call_completed")
    assert completed["inbound_shape"] == "anthropic"
    assert completed["model"] == "claude-haiku-4-5"


def test_a_stream_comes_back_as_the_providers_events(gateway, token):
    body = {**BODY, "stream": True}
    with httpx.stream("POST", f"{gateway.url}/messages", json=body, headers=headers(token)) as r:
        text = r.read().decode()

    assert r.status_code == 200
    names = [
        line.removeprefix("event: ") for line in text.splitlines() if line.startswith("event:")
    ]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    (completed,) = gateway.events("llm.call_completed")
    assert completed["stream"] is True and completed["output_tokens"] > 0


def test_count_tokens_is_there_too(gateway, token):
    body = {"model": "haiku", "messages": HELLO}
    response = httpx.post(f"{gateway.url}/messages/count_tokens", json=body,
                          headers=headers(token))  # fmt: skip

    assert response.status_code == 200, response.text
    assert response.json()["input_tokens"] > 0
    (sent,) = gateway.upstream_requests()
    assert sent["path"] == "/v1/messages/count_tokens"


def test_errors_are_in_the_anthropic_shape(gateway, token):
    unauthenticated = httpx.post(f"{gateway.url}/messages", json=BODY)
    wrong_method = httpx.get(f"{gateway.url}/messages", headers=headers(token))
    no_max_tokens = httpx.post(f"{gateway.url}/messages", headers=headers(token),
                               json={"model": "haiku", "messages": HELLO})  # fmt: skip

    for response, status in ((unauthenticated, 401), (wrong_method, 405), (no_max_tokens, 400)):
        assert response.status_code == status
        error = orjson.loads(response.content)
        assert error["type"] == "error" and error["error"]["message"]
    assert wrong_method.headers["allow"] == "POST"
    assert gateway.upstream_requests() == []
