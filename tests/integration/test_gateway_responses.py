"""The real openai SDK's Responses API through the gateway, to an OpenAI model (pass-through)."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest

from analytics import pricing
from tests.integration.test_gateway_streams import cancelled_call, eventually, usage_of

MODEL = "gpt-5-mini"
WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]},
}  # fmt: skip
# What differs between two answers to one request: fresh ids and clocks.
VOLATILE = re.compile(rb'"(?:resp|msg|rs|fc|call)_[0-9a-f]+"|"(?:created|completed)_at":\d+')


@pytest.fixture
def client(gateway, token) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=token, max_retries=0)


def the_one_call(gateway) -> dict:
    (completed,) = gateway.events("llm.call_completed")
    return completed


def post(url: str, key: str, body: dict[str, Any]) -> bytes:
    headers = {"authorization": f"Bearer {key}"}
    response = httpx.post(f"{url}/v1/responses", json=body, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return VOLATILE.sub(b"<id>", response.content)


@pytest.mark.parametrize("stream", [False, True])
def test_the_provider_gets_the_clients_body_and_the_client_the_providers_bytes(
    gateway, token, stream
):
    body = {
        "model": MODEL,
        "input": [{"role": "user", "content": "Weather in Oslo? [[tool]]"}],
        "instructions": "Be brief",
        "tools": [WEATHER],
        "reasoning": {"effort": "low", "summary": "auto"},
        "include": ["reasoning.encrypted_content"],
        "store": False,
        "stream": stream,
    }
    through = post(gateway.url, token, body)
    direct = post(gateway.mock.url, "sk-direct", body)

    assert through == direct
    sent, _ = gateway.upstream_requests()
    assert sent["path"] == "/v1/responses" and sent["body"] == body
    assert sent["headers"]["authorization"] == "Bearer sk-openai-stored-credential"
    assert the_one_call(gateway)["inbound_shape"] == "responses"


def test_a_response_is_answered_and_its_usage_recorded(gateway, client):
    response = client.responses.create(model=MODEL, input="Say hello")
    completed = the_one_call(gateway)

    assert response.output_text.startswith(f"Hello from mock {MODEL}")
    assert completed["input_tokens"] == response.usage.input_tokens
    assert completed["output_tokens"] == response.usage.output_tokens
    assert completed["reasoning_tokens"] == response.usage.output_tokens_details.reasoning_tokens
    assert (completed["provider"], completed["model"]) == ("openai", MODEL)
    assert completed["stream"] is False and completed["status"] == 200


def test_a_tool_call_and_its_output_pass_through(gateway, client):
    first = client.responses.create(model=MODEL, input="Weather in Oslo? [[tool]]", tools=[WEATHER])
    call = next(item for item in first.output if item.type == "function_call")
    second = client.responses.create(
        model=MODEL,
        tools=[WEATHER],
        input=[
            {"role": "user", "content": "Weather in Oslo? [[tool]]"},
            *[item.model_dump(exclude_none=True) for item in first.output],
            {"type": "function_call_output", "call_id": call.call_id, "output": "Snow"},
        ],
    )

    assert json.loads(call.arguments) == {"city": "mock"}
    assert second.output_text == "Tool said: Snow"
    assert len(gateway.events("llm.call_completed")) == 2


def test_the_stream_helper_gets_every_event_and_the_final_response(gateway, client):
    with client.responses.stream(
        model=MODEL, input="Say hello", reasoning={"summary": "auto"}
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()

    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert "response.reasoning_summary_text.delta" in kinds
    assert "response.output_text.delta" in kinds and kinds[-1] == "response.completed"
    assert final.output_text.startswith("Hello from mock")
    completed = the_one_call(gateway)
    assert completed["stream"] is True
    assert completed["output_tokens"] == final.usage.output_tokens
    assert completed["usage_estimated"] is False


def test_cached_and_reasoning_tokens_are_priced_exactly_streamed_or_not(gateway, client):
    long_input = "Some shared background. " * 300 + "Now answer."
    client.responses.create(model=MODEL, input=long_input)  # fills the provider's cache
    whole = client.responses.create(model=MODEL, input=long_input)
    with client.responses.stream(model=MODEL, input=long_input) as stream:
        streamed = stream.get_final_response()
    _, plain, relayed = gateway.events("llm.call_completed")

    usage = whole.usage
    assert streamed.usage == usage
    assert usage.input_tokens_details.cached_tokens >= 1024
    assert usage.output_tokens_details.reasoning_tokens > 0
    assert (plain["stream"], relayed["stream"]) == (False, True)
    assert usage_of(relayed) == usage_of(plain)
    assert plain["cache_read_input_tokens"] == usage.input_tokens_details.cached_tokens
    assert plain["reasoning_tokens"] == usage.output_tokens_details.reasoning_tokens
    price = pricing.find_price("openai", MODEL)
    assert price is not None and price.cache_read is not None
    cached = usage.input_tokens_details.cached_tokens
    expected = (
        (usage.input_tokens - cached) * price.input
        + cached * price.cache_read
        + usage.output_tokens * price.output  # reasoning is output, billed once
    ).scaleb(-6)
    assert Decimal(str(plain["cost_usd"])) == expected > 0


def test_stored_responses_are_reached_through_the_gateway(gateway, client):
    first = client.responses.create(model=MODEL, input="My name is Ada")
    second = client.responses.create(model=MODEL, input="Who am I?", previous_response_id=first.id)
    items = client.responses.input_items.list(first.id)
    fetched = client.responses.retrieve(first.id)
    queued = client.responses.create(model=MODEL, input="Later", background=True)
    cancelled = client.responses.cancel(queued.id)
    client.responses.delete(first.id)

    assert fetched.output_text == first.output_text
    assert second.previous_response_id == first.id
    assert items.data[0].content[0].text == "My name is Ada"
    assert cancelled.status == "cancelled"
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    paths = [(r["method"], r["path"]) for r in gateway.upstream_requests()]
    assert ("GET", f"/v1/responses/{first.id}/input_items") in paths
    assert ("POST", f"/v1/responses/{queued.id}/cancel") in paths
    assert ("DELETE", f"/v1/responses/{first.id}") in paths
    assert len(gateway.events("llm.call_completed")) == 3  # the creations, not the lookups


def test_stored_response_paths_need_a_gateway_key(gateway):
    stranger = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="gw_nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        stranger.responses.retrieve("resp_123")
    assert gateway.upstream_requests() == []


def test_translated_response_ids_get_a_404_that_says_why(gateway, client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.retrieve("resp_metis_msg_0123")
    error = caught.value.body
    assert error["code"] == "response_not_stored"
    assert "does not store" in error["message"]
    assert gateway.upstream_requests() == []


def test_bad_input_gets_an_openai_shaped_400(gateway, token):
    headers = {"authorization": f"Bearer {token}"}
    url = f"{gateway.url}/v1/responses"
    no_input = httpx.post(url, json={"model": MODEL}, headers=headers)
    bad_limit = httpx.post(
        url, json={"model": MODEL, "input": "hi", "max_output_tokens": 0}, headers=headers
    )
    bad_input = httpx.post(url, json={"model": MODEL, "input": 7}, headers=headers)

    assert no_input.status_code == bad_limit.status_code == bad_input.status_code == 400
    assert no_input.json()["error"]["param"] == "input"
    assert bad_limit.json()["error"]["param"] == "max_output_tokens"
    assert bad_input.json()["error"]["type"] == "invalid_request_error"
    assert gateway.upstream_requests() == []


def test_a_provider_error_is_relayed_in_openai_shape(gateway, client):
    with pytest.raises(openai.InternalServerError) as caught:
        client.responses.create(model=MODEL, input="Say hello [[fault:500]]")
    assert "mock fault 500" in caught.value.body["message"]
    assert the_one_call(gateway)["error_class"] == "UPSTREAM_500"


@pytest.mark.parametrize(("model", "events"), [(MODEL, 9), ("haiku", 5)])
def test_a_cut_stream_ends_in_an_error_event_and_is_recorded(gateway, token, model, events):
    prompt = f"Write about the sea [[fault:cut:{events}]]"  # after a few text deltas
    body = {"model": model, "input": prompt, "stream": True}
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/responses",
        json=body,
        headers={"authorization": f"Bearer {token}"},
        timeout=10,
    ) as response:
        lines = [line for line in response.iter_lines() if line.startswith("event: ")]

    assert lines[:2] == ["event: response.created", "event: response.in_progress"]
    assert lines[-1] == "event: error"
    completed = the_one_call(gateway)
    assert completed["error_class"] == "UPSTREAM_STREAM_ERROR"
    assert completed["usage_estimated"] is True and completed["output_tokens"] >= 1


@pytest.mark.parametrize("model", [MODEL, "haiku"])
def test_a_client_leaving_a_stalled_stream_is_recorded_as_cancelled(gateway, token, model):
    body = {"model": model, "input": "Say hello [[fault:hang]]", "stream": True}
    with (
        httpx.Client(timeout=10) as session,
        session.stream(
            "POST",
            f"{gateway.url}/v1/responses",
            json=body,
            headers={"authorization": f"Bearer {token}"},
        ) as response,
    ):
        for line in response.iter_lines():
            if line == "event: response.created":
                break

    eventually(lambda: gateway.upstream_requests()[0]["disconnected"])
    completed = eventually(lambda: cancelled_call(gateway))
    assert completed["inbound_shape"] == "responses" and completed["stream"] is True
    assert completed["input_tokens"] > 0  # the provider bills the input it was sent
    assert Decimal(str(completed["cost_usd"])) > 0


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("PUT", "/v1/responses/resp_1", 405),
        ("POST", "/v1/responses/resp_1/input_items", 405),
        ("GET", "/v1/responses/resp_1/cancel", 405),
        ("GET", "/v1/responses", 405),
        ("POST", "/v1/responses/compact", 404),
    ],
)
def test_other_methods_and_paths_get_openai_shaped_errors(gateway, token, method, path, status):
    headers = {"authorization": f"Bearer {token}"}
    response = httpx.request(method, f"{gateway.url}{path}", headers=headers, json={})
    assert response.status_code == status
    assert set(response.json()) == {"error"} and response.json()["error"]["message"]
