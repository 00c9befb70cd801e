"""The real openai SDK's Responses API calling Claude models, translated through the
internal form."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from tests.integration.test_gateway_responses import WEATHER
from tests.integration.test_gateway_streams import usage_of

PIXEL = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()


@pytest.fixture
def client(gateway, token) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=token, max_retries=0)


def upstream_bodies(gateway) -> list[dict]:
    sent = gateway.upstream_requests()
    assert all(r["path"].startswith("/v1/messages") for r in sent)
    return [r["body"] for r in sent]


def test_a_response_is_answered_by_claude_in_the_responses_shape(gateway, client):
    response = client.responses.create(model="haiku", input="Say hello", instructions="Be brief")
    (sent,) = upstream_bodies(gateway)
    completed = gateway.events("llm.call_completed")[0]

    assert response.id.startswith("resp_metis_") and response.object == "response"
    assert response.status == "completed" and response.model == "claude-haiku-4-5"
    assert response.output_text.startswith("Hello from mock claude-haiku-4-5")
    assert response.usage.input_tokens == completed["input_tokens"] > 0
    assert response.usage.output_tokens == completed["output_tokens"] > 0
    assert response.store is False
    assert sent["system"] == "Be brief"
    assert sent["messages"] == [{"role": "user", "content": "Say hello"}]
    assert (completed["inbound_shape"], completed["provider"]) == ("responses", "anthropic")
    assert Decimal(str(completed["cost_usd"])) > 0


def test_an_image_reaches_claude_as_an_image_block(gateway, client):
    client.responses.create(
        model="haiku",
        input=[{"role": "user", "content": [
            {"type": "input_text", "text": "What is this?"},
            {"type": "input_image", "image_url": f"data:image/png;base64,{PIXEL}"},
        ]}],
    )  # fmt: skip
    (sent,) = upstream_bodies(gateway)
    image = sent["messages"][0]["content"][1]
    assert image == {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                 "data": PIXEL}}  # fmt: skip


def test_a_function_tool_turn_round_trips_through_claude(gateway, client):
    asked = {"role": "user", "content": "Weather in Oslo? [[tool]]"}
    first = client.responses.create(model="sonnet", input=[asked], tools=[WEATHER])
    (call,) = first.output
    second = client.responses.create(
        model="sonnet",
        tools=[WEATHER],
        input=[
            asked,
            call.model_dump(exclude_none=True),
            {"type": "function_call_output", "call_id": call.call_id, "output": "Snow"},
        ],
    )
    _, resent = upstream_bodies(gateway)

    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "mock"}
    assert call.call_id.startswith("toolu_")
    assert resent["tools"][0]["input_schema"] == WEATHER["parameters"]
    assert resent["messages"][1]["content"][0]["type"] == "tool_use"
    assert resent["messages"][2]["content"][0] == {
        "type": "tool_result", "tool_use_id": call.call_id, "content": "Snow"
    }  # fmt: skip
    assert second.output_text == "Tool said: Snow"


def test_reasoning_maps_to_thinking_and_comes_back_as_a_reasoning_item(gateway, client):
    first = client.responses.create(
        model="sonnet", input="Think, then answer", reasoning={"effort": "medium"}
    )
    reasoning, message = first.output
    client.responses.create(
        model="sonnet",
        reasoning={"effort": "medium"},
        input=[
            {"role": "user", "content": "Think, then answer"},
            *[item.model_dump(exclude_none=True) for item in first.output],
            {"role": "user", "content": "Go on"},
        ],
    )
    sent, resent = upstream_bodies(gateway)

    assert sent["thinking"] == {"type": "adaptive"}  # Sonnet 4.6 sizes its own thinking
    assert sent["output_config"]["effort"] == "medium"
    assert reasoning.type == "reasoning" and reasoning.summary[0].text.startswith("The user said")
    assert reasoning.encrypted_content  # what Claude needs to take its thinking back
    assert message.type == "message"
    thinking = resent["messages"][1]["content"][0]
    assert thinking["type"] == "thinking" and thinking["signature"]
    assert thinking["thinking"] == reasoning.summary[0].text
    assert first.usage.output_tokens > len(first.output_text.split())


@pytest.mark.parametrize("helper", [False, True])
def test_a_claude_stream_arrives_as_semantic_events_costing_the_same(gateway, client, helper):
    request: dict[str, Any] = {"model": "haiku", "input": "Write two sentences about the sea."}
    whole = client.responses.create(**request)
    if helper:
        with client.responses.stream(**request) as stream:
            kinds = [event.type for event in stream]
            final = stream.get_final_response()
    else:
        events = list(client.responses.create(**request, stream=True))
        kinds, final = [e.type for e in events], events[-1].response
        assert [e.sequence_number for e in events] == list(range(len(events)))

    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert final.output_text == whole.output_text
    assert final.usage == whole.usage
    plain, relayed = gateway.events("llm.call_completed")
    assert usage_of(relayed) == usage_of(plain)
    assert Decimal(str(relayed["cost_usd"])) > 0


def test_a_streamed_tool_call_arrives_as_function_call_events(gateway, client):
    events = list(client.responses.create(
        model="haiku", input="Weather? [[tool]]", tools=[WEATHER], stream=True
    ))  # fmt: skip
    kinds = [e.type for e in events]
    arguments = "".join(
        e.delta for e in events if e.type == "response.function_call_arguments.delta"
    )
    assert "response.function_call_arguments.done" in kinds
    assert json.loads(arguments) == {"city": "mock"}
    assert events[-1].response.output[0].type == "function_call"


class Weather(BaseModel):
    city: str
    celsius: int


def test_structured_output_reaches_claude_and_the_sdk_parses_the_answer(gateway, client):
    parsed = client.responses.parse(model="sonnet", input="Weather in Oslo?", text_format=Weather)
    plain = client.responses.create(
        model="haiku",
        input="Weather in Oslo?",
        text={"format": {"type": "json_schema", "name": "w", "schema": WEATHER["parameters"]}},
    )
    first, second = upstream_bodies(gateway)

    assert isinstance(parsed.output_parsed, Weather)
    assert first["output_config"]["format"]["schema"]["required"] == ["city", "celsius"]
    assert second["output_config"]["format"] == {"type": "json_schema",
                                                 "schema": WEATHER["parameters"]}  # fmt: skip
    assert json.loads(plain.output_text) == {"city": "mock"}
    assert plain.output[-1].type == "message"


def test_previous_response_id_is_refused_for_claude_with_a_clear_400(gateway, client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="haiku", input="Go on", previous_response_id="resp_1")
    assert caught.value.body["param"] == "previous_response_id"
    assert "send the whole conversation" in caught.value.body["message"]
    assert gateway.upstream_requests() == []


def test_a_field_claude_cannot_take_is_a_400_naming_it(gateway, client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="haiku", input="hi", top_logprobs=3)
    assert caught.value.body["param"] == "top_logprobs"
    assert gateway.upstream_requests() == []


def test_a_translated_response_cannot_be_retrieved(gateway, client):
    response = client.responses.create(model="haiku", input="Say hello")
    with pytest.raises(openai.NotFoundError, match="does not store"):
        client.responses.retrieve(response.id)


def test_claudes_errors_arrive_in_the_openai_shape(gateway, client):
    with pytest.raises(openai.RateLimitError) as caught:
        client.responses.create(model="haiku", input="Say hello [[fault:429]]")
    assert caught.value.body["type"] and "mock fault 429" in caught.value.body["message"]


def codex_turn(content: str) -> dict[str, Any]:
    """A request as Codex CLI sends it (see the capture in the codex helper's notes)."""
    spawn = {"type": "function", "name": "spawn_agent", "description": "Start a helper",
             "strict": False, "parameters": {"type": "object", "properties": {}}}  # fmt: skip
    return {
        "model": "haiku",
        "input": [
            {
                "type": "message",
                "id": "msg_1",
                "role": "developer",
                "content": [{"type": "input_text", "text": "You are Codex."}],
            },
            {
                "type": "message",
                "id": "msg_2",
                "role": "user",
                "content": [{"type": "input_text", "text": content}],
            },
        ],
        "tools": [
            {**WEATHER, "strict": False},
            {
                "type": "namespace",
                "name": "multi_agent_v1",
                "description": "Agents",
                "tools": [spawn],
            },
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "reasoning": {"summary": "auto"},
        "store": False,
        "stream": True,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "0b7c6f1e-4f4e-4d0a-9d57-1f7f0f0e0a11",
        "client_metadata": {"originator": "codex_exec"},
    }


def test_a_codex_request_reaches_claude_and_namespaced_calls_keep_their_namespace(gateway, client):
    request = codex_turn('Go [[tool:spawn_agent {"n": 1}]]')
    metadata = {"client_metadata": request.pop("client_metadata")}  # not an SDK parameter
    events = list(client.responses.create(**request, extra_body=metadata))
    (sent,) = upstream_bodies(gateway)
    (call,) = events[-1].response.output
    completed = gateway.events("llm.call_completed")[0]

    assert sent["system"] == "You are Codex."
    assert [tool["name"] for tool in sent["tools"]] == ["get_weather", "spawn_agent"]
    assert (call.type, call.name, call.namespace) == ("function_call", "spawn_agent",
                                                      "multi_agent_v1")  # fmt: skip
    added = next(e for e in events if e.type == "response.output_item.added")
    assert added.item.namespace == "multi_agent_v1"
    assert completed["dropped_params"] == []
