"""Parameters with a real equivalent in the other shape are mapped to it, both ways
(reasoning, structured output, limits and tool choices); those without one are refused,
or dropped by the key's policy and listed."""

from __future__ import annotations

import orjson

from gateway.shapes import internal
from gateway.shapes.anthropic.requests import STRUCTURED_TOOL
from tests.unit.test_translate import ANTHROPIC, CHAT, HI, to_anthropic, to_openai


def test_thinking_becomes_a_reasoning_effort_by_budget():
    for budget, effort in ((1024, "low"), (8000, "medium"), (20000, "high")):
        thinking = {"type": "enabled", "budget_tokens": budget}
        body = to_openai({"model": "m", "max_tokens": 30000, "messages": HI, "thinking": thinking})
        assert body["reasoning_effort"] == effort


def test_a_reasoning_effort_becomes_a_thinking_budget_that_reads_back_as_the_same_effort():
    for effort in ("low", "medium", "high"):
        body = to_anthropic(
            {"model": "claude-sonnet-4-5", "messages": HI, "reasoning_effort": effort}
        )
        assert body["thinking"]["type"] == "enabled"
        assert body["max_tokens"] > body["thinking"]["budget_tokens"] >= 1024
        assert to_openai(body)["reasoning_effort"] == effort


def test_a_thinking_budget_stays_inside_the_callers_output_limit():
    asked = {"model": "claude-haiku-4-5", "messages": HI, "reasoning_effort": "high"}
    body = to_anthropic({**asked, "max_completion_tokens": 5000})
    assert body["max_tokens"] == 5000 and body["thinking"]["budget_tokens"] == 4999
    small = to_anthropic({**asked, "max_completion_tokens": 500})
    assert "thinking" not in small  # below Anthropic's minimum budget: no room to think


def test_effort_none_turns_thinking_off():
    body = to_anthropic({"model": "m", "messages": HI, "reasoning_effort": "none"})
    assert body["thinking"] == {"type": "disabled"}


def test_with_the_drop_policy_unportable_fields_are_dropped_and_listed():
    unportable = internal.Unportable(drop=True, target="the model")
    body = {"model": "m", "messages": HI, "seed": 7, "logprobs": True, "temperature": 1.5}
    request = CHAT.to_internal(body, unportable)
    sent = ANTHROPIC.from_internal(request, unportable)
    assert unportable.dropped == ["seed", "logprobs", "temperature"]
    assert "temperature" not in sent and "seed" not in sent


def test_a_field_refused_by_the_provider_side_is_named_as_the_caller_spells_it():
    stops = ["a", "b", "c", "d", "e"]
    unportable = internal.Unportable(drop=True)
    body = {"model": "m", "max_tokens": 5, "messages": HI, "stop_sequences": stops}
    CHAT.from_internal(ANTHROPIC.to_internal(body, unportable), unportable)
    assert unportable.dropped == ["stop_sequences"]


def test_models_that_think_adaptively_get_an_effort_instead_of_a_budget():
    body = to_anthropic({"model": "claude-opus-4-6", "messages": HI, "reasoning_effort": "low"})
    assert body["thinking"] == {"type": "adaptive"}
    assert body["output_config"] == {"effort": "low"}
    assert to_openai(body)["reasoning_effort"] == "low"


SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}
JSON_SCHEMA = {"type": "json_schema", "json_schema": {"name": "place", "schema": SCHEMA}}


def test_a_json_schema_becomes_claudes_structured_output_and_back():
    body = to_anthropic(
        {"model": "claude-haiku-4-5", "messages": HI, "response_format": JSON_SCHEMA}
    )
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": SCHEMA}}
    assert "tools" not in body
    assert to_openai(body)["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": SCHEMA},
    }


def test_older_claude_models_and_json_mode_answer_through_a_forced_tool_read_back_as_text():
    for model, fmt, schema in (
        ("claude-3-5-haiku-latest", JSON_SCHEMA, SCHEMA),
        ("claude-haiku-4-5", {"type": "json_object"}, {"type": "object"}),
    ):
        body = to_anthropic({"model": model, "messages": HI, "response_format": fmt})
        (tool,) = body["tools"]
        assert (tool["name"], tool["input_schema"]) == (STRUCTURED_TOOL, schema)
        assert body["tool_choice"] == {"type": "tool", "name": STRUCTURED_TOOL}
    answer = {
        "id": "msg_1",
        "model": "claude-3-5-haiku-latest",
        "stop_reason": "tool_use",
        "content": [
            {"type": "tool_use", "id": "t", "name": STRUCTURED_TOOL, "input": {"city": "Paris"}}
        ],
        "usage": {"input_tokens": 5, "output_tokens": 3},
    }
    request = internal.Request("claude-3-5-haiku-latest", [])
    completion = CHAT.response_from_internal(ANTHROPIC.response_to_internal(answer), request)
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "stop" and "tool_calls" not in choice["message"]
    assert orjson.loads(choice["message"]["content"]) == {"city": "Paris"}


def test_with_the_callers_own_tools_the_structured_tool_is_one_more_choice():
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    body = to_anthropic(
        {"model": "claude-3-haiku", "messages": HI, "tools": [tool], "response_format": JSON_SCHEMA}
    )
    assert [t["name"] for t in body["tools"]] == ["f", STRUCTURED_TOOL]
    assert body["tool_choice"] == {"type": "any"}
