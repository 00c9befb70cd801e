"""Parameters with a real equivalent in the other shape arrive as it, through the real SDKs:
reasoning effort and thinking, structured output, and the drop policy for those without one."""

from __future__ import annotations

import json

import anthropic
import httpx
import openai
import pytest
from pydantic import BaseModel

from gateway.shapes.anthropic.requests import STRUCTURED_TOOL
from tests.factories import make_key, make_workspace
from tests.integration.payloads import ANTHROPIC_WEATHER_TOOL, HELLO, OPENAI_WEATHER_TOOL

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
    "required": ["city", "days"],
    "additionalProperties": False,
}
JSON_SCHEMA = {"type": "json_schema", "json_schema": {"name": "trip", "schema": SCHEMA}}


@pytest.fixture
def gpt_client(gateway, token) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=token, max_retries=0)


@pytest.fixture
def claude_client(gateway, token) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=token, max_retries=0)


def sent(gateway) -> dict:
    return gateway.upstream_requests()[-1]["body"]


def streamed_text(stream) -> str:
    return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


# ---- reasoning ---------------------------------------------------------------------------


def test_reasoning_effort_becomes_a_thinking_budget_for_claude_4_5(gateway, gpt_client):
    completion = gpt_client.chat.completions.create(
        model="claude-haiku-4-5", messages=HELLO, reasoning_effort="low"
    )
    body = sent(gateway)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert body["max_tokens"] == 4096 + 2048  # the answer's default room, and the thinking's
    # Chat Completions shows no reasoning text, but bills it.
    assert completion.choices[0].message.content.startswith("Hello from mock")
    (completed,) = gateway.events("llm.call_completed")
    assert completed["output_tokens"] == completion.usage.completion_tokens


def test_reasoning_effort_becomes_adaptive_thinking_for_claude_4_6_streamed(gateway, gpt_client):
    stream = gpt_client.chat.completions.create(
        model="claude-sonnet-4-6", messages=HELLO, reasoning_effort="high", stream=True
    )
    assert streamed_text(stream).startswith("Hello from mock claude-sonnet-4-6")
    body = sent(gateway)
    assert body["thinking"] == {"type": "adaptive"}
    assert body["output_config"] == {"effort": "high"}


def test_thinking_becomes_a_reasoning_effort_for_gpt(gateway, claude_client):
    message = claude_client.messages.create(
        model="gpt-5-mini",
        max_tokens=20000,
        messages=HELLO,
        thinking={"type": "enabled", "budget_tokens": 16384},
    )
    assert sent(gateway)["reasoning_effort"] == "high"
    assert message.content[0].text.startswith("Hello from mock gpt-5-mini")


# ---- structured output -------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_a_json_schema_is_answered_by_claudes_structured_output(gateway, gpt_client, stream):
    asked = {"model": "claude-haiku-4-5", "messages": HELLO, "response_format": JSON_SCHEMA}
    if stream:
        text = streamed_text(gpt_client.chat.completions.create(**asked, stream=True))
    else:
        text = gpt_client.chat.completions.create(**asked).choices[0].message.content
    assert json.loads(text) == {"city": "mock", "days": 1}
    body = sent(gateway)
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": SCHEMA}}
    assert "tools" not in body


class Trip(BaseModel):
    city: str
    days: int


def test_the_sdks_parse_helper_gets_its_pydantic_model_from_claude(gateway, gpt_client):
    completion = gpt_client.chat.completions.parse(
        model="claude-sonnet-4-6", messages=HELLO, response_format=Trip
    )
    assert completion.choices[0].message.parsed == Trip(city="mock", days=1)
    schema = sent(gateway)["output_config"]["format"]["schema"]
    assert schema["required"] == ["city", "days"] and schema["additionalProperties"] is False


@pytest.mark.parametrize("stream", [False, True])
def test_json_mode_is_answered_through_a_forced_tool_as_json_content(gateway, gpt_client, stream):
    asked = {"model": "haiku", "messages": HELLO, "response_format": {"type": "json_object"}}
    if stream:
        chunks = list(gpt_client.chat.completions.create(**asked, stream=True))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        finish = chunks[-1].choices[0].finish_reason
        assert not any(c.choices[0].delta.tool_calls for c in chunks if c.choices)
    else:
        choice = gpt_client.chat.completions.create(**asked).choices[0]
        text, finish = choice.message.content, choice.finish_reason
        assert choice.message.tool_calls is None
    assert finish == "stop"
    assert isinstance(json.loads(text), dict)  # any object will do: the tool's input
    body = sent(gateway)
    assert body["tool_choice"] == {"type": "tool", "name": STRUCTURED_TOOL}


def test_structured_output_and_the_callers_tools_live_side_by_side(gateway, gpt_client):
    asked = [{"role": "user", "content": "Weather in Paris? [[tool:get_weather]]"}]
    first = gpt_client.chat.completions.create(
        model="haiku", messages=asked, tools=[OPENAI_WEATHER_TOOL], response_format=JSON_SCHEMA
    )
    (call,) = first.choices[0].message.tool_calls
    assert call.function.name == "get_weather" and first.choices[0].finish_reason == "tool_calls"
    answered = [
        *asked,
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny"},
    ]
    final = gpt_client.chat.completions.create(
        model="haiku", messages=answered, tools=[OPENAI_WEATHER_TOOL], response_format=JSON_SCHEMA
    )
    # Claude 4.5 takes output_config.format beside tools: the last answer is the JSON.
    assert json.loads(final.choices[0].message.content) == {"city": "mock", "days": 1}


@pytest.mark.parametrize("stream", [False, True])
def test_claudes_structured_output_reaches_gpt_as_a_response_format(gateway, claude_client, stream):
    asked = {
        "model": "gpt-4.1",
        "max_tokens": 200,
        "messages": HELLO,
        "tools": [ANTHROPIC_WEATHER_TOOL],
        "extra_body": {"output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}},
    }
    if stream:
        with claude_client.messages.stream(**asked) as events:
            message = events.get_final_message()
    else:
        message = claude_client.messages.create(**asked)
    assert json.loads(message.content[0].text) == {"city": "mock", "days": 1}
    body = sent(gateway)
    assert body["response_format"]["json_schema"]["schema"] == SCHEMA
    assert body["tools"][0]["function"]["name"] == "get_weather"


# ---- what has no equivalent: refused, or dropped by the key's policy ---------------------


def test_a_seed_for_claude_is_refused_by_default_naming_it(gateway, gpt_client):
    with pytest.raises(openai.BadRequestError) as caught:
        gpt_client.chat.completions.create(model="haiku", messages=HELLO, seed=7)
    assert caught.value.body["param"] == "seed" and "seed" in caught.value.message
    assert gateway.upstream_requests() == []


@pytest.fixture
def dropping_token(transactional_db) -> str:
    """A key whose workspace drops unsupported parameters (the operator's policy)."""
    workspace = make_workspace(path="/srv/lenient")
    workspace.drop_unsupported_params = True
    workspace.save()
    return make_key(name="lenient", workspace=workspace)[1]


@pytest.mark.parametrize("stream", [False, True])
def test_with_the_drop_policy_unportable_fields_are_dropped_and_said(
    gateway, dropping_token, stream
):
    body = {
        "model": "haiku",
        "messages": HELLO,
        "seed": 7,
        "logprobs": True,
        "temperature": 1.5,
        "stream": stream,
    }
    headers = {"authorization": f"Bearer {dropping_token}"}
    response = httpx.post(f"{gateway.url}/v1/chat/completions", json=body, headers=headers)
    assert response.status_code == 200
    assert response.headers["x-metis-dropped-params"] == "seed,logprobs,temperature"
    upstream = sent(gateway)
    assert not {"seed", "logprobs", "temperature"} & set(upstream)
    (completed,) = gateway.events("llm.call_completed")
    assert completed["dropped_params"] == ["seed", "logprobs", "temperature"]


def test_a_call_that_dropped_nothing_says_so(gateway, dropping_token):
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=dropping_token, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="haiku", messages=HELLO)
    assert "x-metis-dropped-params" not in raw.headers
    (completed,) = gateway.events("llm.call_completed")
    assert completed["dropped_params"] == []
