"""The real anthropic SDK calling OpenAI models through /v1/messages."""

from __future__ import annotations

import base64
from decimal import Decimal

import anthropic
import httpx
import pytest

from tests.integration.payloads import ANTHROPIC_WEATHER_TOOL as WEATHER_TOOL
from tests.integration.payloads import HELLO

PIXEL = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()


@pytest.fixture
def client(gateway, token) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=token, max_retries=0)


def the_upstream_body(gateway) -> dict:
    (sent,) = gateway.upstream_requests()
    assert sent["path"].startswith("/v1/chat/completions")
    return sent["body"]


def test_a_message_is_answered_by_gpt_in_the_anthropic_shape(gateway, client):
    message = client.messages.create(model="gpt-5-mini", max_tokens=200, messages=HELLO)
    assert message.type == "message" and message.id.startswith("msg_")
    assert message.model == "gpt-5-mini"
    assert message.content[0].text.startswith("Hello from mock gpt-5-mini")
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    sent = the_upstream_body(gateway)
    assert sent["model"] == "gpt-5-mini"
    assert sent["max_completion_tokens"] == 200
    assert sent["messages"] == [{"role": "user", "content": "Say hello"}]


def test_the_call_is_recorded_with_the_real_model_and_the_callers_shape(gateway, client):
    message = client.messages.create(model="gpt-5-mini", max_tokens=200, messages=HELLO)
    events = gateway.events()
    assert [e["type"] for e in events] == ["route.decided", "llm.call_completed", "turn.completed"]
    for event in events:
        assert event["inbound_shape"] == "anthropic"
        assert event["provider"] == "openai"
        assert event["model"] == "gpt-5-mini"
    completed = events[1]
    assert completed["input_tokens"] == message.usage.input_tokens
    assert completed["output_tokens"] == message.usage.output_tokens
    assert Decimal(str(completed["cost_usd"])) > 0


def test_a_stream_arrives_as_anthropic_events_with_usage(gateway, client):
    with client.messages.stream(model="gpt-5-mini", max_tokens=200, messages=HELLO) as stream:
        kinds = [event.type for event in stream]
        message = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "content_block_delta" in kinds
    assert message.content[0].text.startswith("Hello from mock gpt-5-mini")
    assert message.stop_reason == "end_turn"
    (completed,) = gateway.events("llm.call_completed")
    assert completed["output_tokens"] == message.usage.output_tokens > 0
    assert completed["input_tokens"] == message.usage.input_tokens > 0
    assert completed["stream"] is True and completed["usage_estimated"] is False
    sent = the_upstream_body(gateway)
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


def test_a_raw_stream_has_event_lines(gateway, token):
    body = {"model": "gpt-5-mini", "max_tokens": 50, "messages": HELLO, "stream": True}
    headers = {"x-api-key": token, "anthropic-version": "2023-06-01"}
    with httpx.stream("POST", f"{gateway.url}/v1/messages", json=body, headers=headers) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    names = [line[7:] for line in lines if line.startswith("event: ")]
    assert len(names) * 2 == len(lines)
    assert names[-2:] == ["message_delta", "message_stop"]
    assert "[DONE]" not in "".join(lines)


def test_the_system_prompt_becomes_a_system_message(gateway, client):
    client.messages.create(model="gpt-5-mini", max_tokens=50, system="Be terse.", messages=HELLO)
    sent = the_upstream_body(gateway)
    assert sent["messages"][0] == {"role": "system", "content": "Be terse."}


def test_a_tool_use_round_trip_ends_in_text(gateway, client):
    asked = [{"role": "user", "content": "What is the weather in Paris? [[tool]]"}]
    first = client.messages.create(
        model="gpt-5-mini", max_tokens=200, tools=[WEATHER_TOOL], messages=asked
    )
    assert first.stop_reason == "tool_use"
    (tool_use,) = [block for block in first.content if block.type == "tool_use"]
    assert tool_use.name == "get_weather" and tool_use.id.startswith("call_")
    assert "city" in tool_use.input
    result = {"type": "tool_result", "tool_use_id": tool_use.id, "content": "Sunny"}
    answered = [
        *asked,
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {"role": "user", "content": [result]},
    ]
    final = client.messages.create(
        model="gpt-5-mini", max_tokens=200, tools=[WEATHER_TOOL], messages=answered
    )
    assert final.stop_reason == "end_turn"
    assert final.content[0].text == "Tool said: Sunny"
    sent = gateway.upstream_requests()[-1]["body"]
    assert sent["tools"][0]["function"]["parameters"] == WEATHER_TOOL["input_schema"]
    assistant, tool = sent["messages"][1:]
    assert assistant["tool_calls"][0]["id"] == tool_use.id
    assert tool == {"role": "tool", "tool_call_id": tool_use.id, "content": "Sunny"}


def test_a_streamed_tool_use_carries_its_input(gateway, client):
    asked = [{"role": "user", "content": "Weather in Paris? [[tool]]"}]
    with client.messages.stream(
        model="gpt-5-mini",
        max_tokens=200,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "any"},
        messages=asked,
    ) as stream:
        message = stream.get_final_message()
    (tool_use,) = message.content
    assert tool_use.type == "tool_use" and tool_use.input == {"city": "mock"}
    assert message.stop_reason == "tool_use"
    assert the_upstream_body(gateway)["tool_choice"] == "required"


def test_an_image_block_reaches_gpt_as_a_data_url(gateway, client):
    image = {"type": "base64", "media_type": "image/png", "data": PIXEL}
    content = [{"type": "text", "text": "What is this?"}, {"type": "image", "source": image}]
    client.messages.create(
        model="gpt-5-mini", max_tokens=50, messages=[{"role": "user", "content": content}]
    )
    (_, part) = the_upstream_body(gateway)["messages"][0]["content"]
    assert part == {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}}


def test_a_small_max_tokens_stops_with_max_tokens(gateway, client):
    # gpt-5-mini spends 16 reasoning tokens first, as the mock's reasoning models do.
    message = client.messages.create(model="gpt-5-mini", max_tokens=18, messages=HELLO)
    assert message.stop_reason == "max_tokens"


def test_a_stop_sequence_ends_the_turn(gateway, client):
    message = client.messages.create(
        model="gpt-5-mini", max_tokens=200, messages=HELLO, stop_sequences=["mock"]
    )
    assert message.content[0].text == "Hello from "
    assert message.stop_reason == "end_turn"  # OpenAI does not say which stop matched
    assert the_upstream_body(gateway)["stop"] == ["mock"]


def test_an_upstream_error_arrives_in_the_anthropic_error_shape(gateway, client, settings):
    settings.METIS_UPSTREAM_RETRIES = 0
    with pytest.raises(anthropic.InternalServerError) as caught:
        client.messages.create(
            model="gpt-5-mini",
            max_tokens=50,
            messages=[{"role": "user", "content": "Hi [[fault:500]]"}],
        )
    assert caught.value.status_code == 500
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == "api_error"
    (completed,) = gateway.events("llm.call_completed")
    assert completed["status"] == 500 and completed["inbound_shape"] == "anthropic"


def test_a_field_gpt_cannot_honour_is_refused_naming_it(gateway, client):
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(
            model="gpt-5-mini", max_tokens=50, messages=HELLO, extra_body={"top_k": 5}
        )
    assert "top_k" in caught.value.message
    assert gateway.upstream_requests() == []
