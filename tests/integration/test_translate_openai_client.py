"""The real openai SDK calling Claude models through /v1/chat/completions."""

from __future__ import annotations

import base64
import json
from decimal import Decimal

import httpx
import openai
import pytest

from tests.integration.payloads import HELLO
from tests.integration.payloads import OPENAI_WEATHER_TOOL as WEATHER_TOOL

PIXEL = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()


@pytest.fixture
def client(gateway, token) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=token, max_retries=0)


def the_upstream_body(gateway) -> dict:
    (sent,) = gateway.upstream_requests()
    assert sent["path"].startswith("/v1/messages")
    return sent["body"]


def test_a_completion_is_answered_by_claude_in_the_openai_shape(gateway, client):
    completion = client.chat.completions.create(model="haiku", messages=HELLO)
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "claude-haiku-4-5"
    assert completion.created > 0
    choice = completion.choices[0]
    assert choice.message.content.startswith("Hello from mock claude-haiku-4-5")
    assert choice.finish_reason == "stop"
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    sent = the_upstream_body(gateway)
    assert sent["model"] == "claude-haiku-4-5"
    assert sent["max_tokens"] == 4096
    assert sent["messages"] == [{"role": "user", "content": "Say hello"}]


def test_the_call_is_recorded_with_the_real_model_and_the_callers_shape(gateway, client):
    completion = client.chat.completions.create(model="anthropic:claude-haiku-4-5", messages=HELLO)
    events = gateway.events()
    assert [e["type"] for e in events] == ["route.decided", "llm.call_completed", "turn.completed"]
    for event in events:
        assert event["inbound_shape"] == "openai"
        assert event["provider"] == "anthropic"
        assert event["model"] == "claude-haiku-4-5"
    completed = events[1]
    assert completed["input_tokens"] == completion.usage.prompt_tokens
    assert completed["output_tokens"] == completion.usage.completion_tokens
    assert Decimal(str(completed["cost_usd"])) > 0


def test_a_stream_arrives_as_chunks_ending_with_usage_when_asked(gateway, client):
    chunks = list(
        client.chat.completions.create(
            model="haiku", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("Hello from mock claude-haiku-4-5")
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    last = chunks[-1]
    assert last.choices == [] and last.usage.completion_tokens > 0
    (completed,) = gateway.events("llm.call_completed")
    assert completed["output_tokens"] == last.usage.completion_tokens
    assert completed["stream"] is True and completed["usage_estimated"] is False
    assert the_upstream_body(gateway)["stream"] is True


def test_a_raw_stream_without_include_usage_has_no_usage_chunk_and_ends_with_done(gateway, token):
    body = {"model": "haiku", "messages": HELLO, "stream": True}
    headers = {"authorization": f"Bearer {token}"}
    url = f"{gateway.url}/v1/chat/completions"
    with httpx.stream("POST", url, json=body, headers=headers) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    assert not any(line.startswith("event:") for line in lines)
    payloads = [json.loads(line[6:]) for line in lines[:-1]]
    assert all(p["choices"] and p["object"] == "chat.completion.chunk" for p in payloads)


def test_system_messages_become_the_anthropic_system_prompt(gateway, client):
    messages = [
        {"role": "system", "content": "Be terse."},
        {"role": "developer", "content": "Answer in English."},
        *HELLO,
    ]
    client.chat.completions.create(model="haiku", messages=messages)
    sent = the_upstream_body(gateway)
    assert sent["system"] == [
        {"type": "text", "text": "Be terse."},
        {"type": "text", "text": "Answer in English."},
    ]
    assert [m["role"] for m in sent["messages"]] == ["user"]


def test_a_tool_call_round_trip_ends_in_text(gateway, client):
    asked = [{"role": "user", "content": "What is the weather in Paris? [[tool]]"}]
    first = client.chat.completions.create(model="haiku", tools=[WEATHER_TOOL], messages=asked)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather" and call.id.startswith("toolu_")
    assert "city" in json.loads(call.function.arguments)
    answered = [
        *asked,
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny"},
    ]
    final = client.chat.completions.create(model="haiku", tools=[WEATHER_TOOL], messages=answered)
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.content == "Tool said: Sunny"
    sent = gateway.upstream_requests()[-1]["body"]
    assert sent["tools"][0]["input_schema"] == WEATHER_TOOL["function"]["parameters"]
    assistant, result = sent["messages"][1:]
    assert (
        assistant["content"][0]["type"] == "tool_use" and assistant["content"][0]["id"] == call.id
    )
    assert result == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "Sunny"}],
    }


def test_a_streamed_tool_call_carries_its_id_name_and_arguments(gateway, client):
    asked = [{"role": "user", "content": "Weather in Paris? [[tool]]"}]
    stream = client.chat.completions.create(
        model="haiku", tools=[WEATHER_TOOL], tool_choice="auto", messages=asked, stream=True
    )
    chunks = list(stream)
    calls = [call for c in chunks for call in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].id.startswith("toolu_") and calls[0].function.name == "get_weather"
    assert {call.index for call in calls} == {0}
    arguments = "".join(call.function.arguments or "" for call in calls)
    assert json.loads(arguments) == {"city": "mock"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_an_image_by_data_url_reaches_claude_as_a_base64_block(gateway, client):
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
    ]
    client.chat.completions.create(model="haiku", messages=[{"role": "user", "content": content}])
    (_, image) = the_upstream_body(gateway)["messages"][0]["content"]
    assert image == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": PIXEL},
    }


def test_a_small_max_tokens_finishes_with_length(gateway, client):
    completion = client.chat.completions.create(
        model="haiku", messages=HELLO, max_completion_tokens=2
    )
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 2
    assert the_upstream_body(gateway)["max_tokens"] == 2


def test_a_stop_sequence_finishes_with_stop(gateway, client):
    completion = client.chat.completions.create(model="haiku", messages=HELLO, stop=["mock"])
    assert completion.choices[0].message.content == "Hello from "
    assert completion.choices[0].finish_reason == "stop"
    assert the_upstream_body(gateway)["stop_sequences"] == ["mock"]


def test_an_upstream_error_arrives_in_the_openai_error_shape(gateway, client, settings):
    settings.METIS_UPSTREAM_RETRIES = 0
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(
            model="haiku", messages=[{"role": "user", "content": "Hi [[fault:500]]"}]
        )
    assert caught.value.status_code == 500
    error = caught.value.body
    assert error["type"] == "server_error" and error["message"]
    (completed,) = gateway.events("llm.call_completed")
    assert completed["status"] == 500 and completed["inbound_shape"] == "openai"


def test_a_field_claude_cannot_honour_is_refused_naming_it(gateway, client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="haiku", messages=HELLO, n=2)
    assert caught.value.body["param"] == "n"
    assert gateway.upstream_requests() == []
