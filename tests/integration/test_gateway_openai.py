"""The real openai SDK against the gateway, in front of the mock provider over loopback."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import openai
import pytest

from tests.integration.payloads import HELLO
from tests.integration.payloads import OPENAI_WEATHER_TOOL as WEATHER_TOOL


@pytest.fixture
def client(gateway, token) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=token, max_retries=0)


def the_one_call(gateway) -> dict:
    (completed,) = gateway.events("llm.call_completed")
    return completed


def test_a_completion_is_answered_and_its_usage_recorded(gateway, client):
    completion = client.chat.completions.create(model="gpt-5-mini", messages=HELLO)
    assert completion.choices[0].message.content
    completed = the_one_call(gateway)
    assert completed["input_tokens"] == completion.usage.prompt_tokens
    assert completed["output_tokens"] == completion.usage.completion_tokens
    assert completed["stream"] is False and completed["status"] == 200


def test_a_stream_without_include_usage_hides_the_usage_chunk_but_records_usage(gateway, client):
    chunks = list(client.chat.completions.create(model="gpt-5-mini", messages=HELLO, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert all(chunk.choices for chunk in chunks)
    assert all(chunk.usage is None for chunk in chunks)
    (sent,) = gateway.upstream_requests()
    assert sent["body"]["stream_options"] == {"include_usage": True}
    completed = the_one_call(gateway)
    assert completed["input_tokens"] > 0 and completed["output_tokens"] > 0
    assert completed["usage_estimated"] is False


def test_a_stream_with_include_usage_gets_the_final_usage_chunk(gateway, client):
    chunks = list(
        client.chat.completions.create(
            model="gpt-5-mini",
            messages=HELLO,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    completed = the_one_call(gateway)
    assert completed["input_tokens"] == last.usage.prompt_tokens
    assert completed["output_tokens"] == last.usage.completion_tokens


def test_the_raw_stream_ends_with_done(gateway, token):
    body = {"model": "gpt-5-mini", "messages": HELLO, "stream": True}
    headers = {"authorization": f"Bearer {token}"}
    with httpx.stream(
        "POST", f"{gateway.url}/v1/chat/completions", json=body, headers=headers
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    payloads = [json.loads(line[6:]) for line in lines[:-1]]
    assert all(payload["choices"] for payload in payloads)


def test_a_call_records_three_events_with_its_attribution(gateway, client):
    client.chat.completions.create(model="gpt-5-mini", messages=HELLO)
    events = gateway.events()
    assert [e["type"] for e in events] == ["route.decided", "llm.call_completed", "turn.completed"]
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    assert len({e["request_id"] for e in events}) == 1
    for event in events:
        assert event["gateway_key_id"].startswith("gk_")
        assert (event["user"], event["team"]) == ("alice", "eng")
        assert event["workspace"] == "/srv/buyer-project"
        assert event["inbound_shape"] == "openai"
        assert event["provider"] == "openai"
        assert event["model"] == "gpt-5-mini"
        assert event["requested_model"] == "gpt-5-mini"
    completed = events[1]
    assert Decimal(str(completed["cost_usd"])) > 0 and completed["price_source"]


def test_a_tool_call_round_trip_ends_in_text(gateway, client):
    asked = [{"role": "user", "content": "What is the weather in Paris? [[tool]]"}]
    first = client.chat.completions.create(model="gpt-5-mini", tools=[WEATHER_TOOL], messages=asked)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    (tool_call,) = choice.message.tool_calls
    assert tool_call.function.name == "get_weather"
    assert "city" in json.loads(tool_call.function.arguments)
    answered = [
        *asked,
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": tool_call.id, "content": "Sunny"},
    ]
    final = client.chat.completions.create(
        model="gpt-5-mini", tools=[WEATHER_TOOL], messages=answered
    )
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.content
    assert len(gateway.events("llm.call_completed")) == 2


def test_a_streamed_tool_call_carries_its_arguments(gateway, client):
    asked = [{"role": "user", "content": "Weather in Paris? [[tool]]"}]
    chunks = list(
        client.chat.completions.create(
            model="gpt-5-mini", tools=[WEATHER_TOOL], messages=asked, stream=True
        )
    )
    arguments = "".join(
        call.function.arguments or ""
        for chunk in chunks
        for call in (chunk.choices[0].delta.tool_calls or [])
    )
    assert "city" in json.loads(arguments)
    assert the_one_call(gateway)["output_tokens"] > 0


def test_models_list_answers_in_the_openai_shape(gateway, client):
    page = client.models.list()
    ids = [model.id for model in page.data]
    assert "gpt-5-mini" in ids
    assert all(model.object == "model" and model.owned_by for model in page.data)


def test_the_providers_request_id_and_cost_headers_come_back(gateway, client, token):
    raw = client.chat.completions.with_raw_response.create(model="gpt-5-mini", messages=HELLO)
    assert raw.parse().choices[0].message.content
    completed = the_one_call(gateway)
    assert raw.headers["x-request-id"] == completed["upstream_request_id"]
    assert Decimal(raw.headers["x-metis-cost-usd"]) == Decimal(str(completed["cost_usd"]))
    assert float(raw.headers["x-metis-overhead-ms"]) >= 0
    (sent,) = gateway.upstream_requests()
    assert sent["headers"]["authorization"] == "Bearer sk-openai-stored-credential"
    assert token not in str(sent)


def test_x_metis_user_labels_the_calls_user(gateway, client):
    client.chat.completions.create(
        model="gpt-5-mini", messages=HELLO, extra_headers={"x-metis-user": "carol"}
    )
    assert {e["user"] for e in gateway.events()} == {"carol"}
