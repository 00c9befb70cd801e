"""The Responses API shape: usage and text read from recorded payloads, and translation
to and from the internal form, checked against what the openai SDK's types expect."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from gateway.errors import GatewayError
from gateway.providers.base import Usage
from gateway.shapes import internal
from gateway.shapes.anthropic import answers as claude_answers
from gateway.shapes.anthropic import requests as claude_requests
from gateway.shapes.openai_responses import OpenAIResponses, answers
from gateway.shapes.openai_responses import requests as responses_requests
from gateway.sse import SSEEvent, SSEParser

FIXTURES = Path(__file__).parent.parent / "fixtures" / "responses"
SHAPE = OpenAIResponses()
EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}}


def events(name: str) -> list[Any]:
    parser = SSEParser()
    return parser.feed((FIXTURES / f"{name}.sse").read_bytes()) + parser.flush()


def body(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("text", Usage(input_tokens=11, output_tokens=10)),
        ("cache", Usage(input_tokens=2070, output_tokens=12, cache_read_tokens=1920)),
        ("reasoning", Usage(input_tokens=19, output_tokens=215, reasoning_tokens=192)),
    ],
)
def test_recorded_usage_is_read_in_metis_terms(name: str, expected: Usage) -> None:
    assert SHAPE.usage_from_body(body(name)) == expected


def test_only_the_terminal_event_carries_usage() -> None:
    usage, changed = Usage(), []
    for event in events("reasoning"):
        after = SHAPE.usage_from_event(event, usage)
        if after is not usage:
            changed.append(event.event)
        usage = after
    assert changed == ["response.completed"]


def test_text_covers_output_reasoning_summary_and_tool_arguments() -> None:
    text = "".join(SHAPE.text_from_event(e) for e in events("reasoning"))
    tool = "".join(SHAPE.text_from_event(e) for e in events("tool_call"))
    assert text.startswith("**Multiplying 27 by 453**") and text.endswith("12,231.")
    assert json.loads(tool) == {"location": "San Francisco, CA", "unit": "celsius"}


def test_a_conversation_with_tools_images_and_reasoning_reaches_the_internal_form() -> None:
    request = SHAPE.to_internal(
        {
            "model": "claude-sonnet-4-6",
            "instructions": "Be brief",
            "input": [
                {"role": "developer", "content": "Use metric units"},
                {"role": "user", "content": [
                    {"type": "input_text", "text": "Weather here?"},
                    {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="},
                ]},
                {"type": "reasoning", "summary": [{"type": "summary_text", "text": "Look it up"}]},
                {"type": "function_call", "call_id": "toolu_1", "name": "weather",
                 "arguments": '{"city":"Oslo"}'},
                {"type": "function_call_output", "call_id": "toolu_1", "output": "Snow"},
            ],
            "tools": [{"type": "function", "name": "weather", "parameters": WEATHER}],
            "tool_choice": {"type": "function", "name": "weather"},
            "reasoning": {"effort": "high", "summary": "auto"},
            "text": {"format": {"type": "json_schema", "name": "w", "schema": WEATHER}},
            "max_output_tokens": 500,
            "parallel_tool_calls": False,
            "store": False,
            "include": ["reasoning.encrypted_content"],
            "user": "u-42",
        },
        internal.Unportable(),
    )  # fmt: skip
    assert [t.text for t in request.system] == ["Be brief", "Use metric units"]
    user, assistant, result = request.messages
    assert user.role == "user" and user.parts[0] == internal.Text("Weather here?")
    assert user.parts[1] == internal.Image(media_type="image/png", data="iVBORw0KGgo=")
    assert assistant.parts == [
        internal.Reasoning(text="Look it up"),
        internal.ToolCall("toolu_1", "weather", '{"city":"Oslo"}'),
    ]
    assert result.parts == [internal.ToolResult("toolu_1", [internal.Text("Snow")])]
    assert request.tools == [internal.Tool("weather", WEATHER)]
    assert request.tool_choice == internal.ToolChoice("tool", "weather")
    assert request.reasoning_effort == "high" and request.max_output_tokens == 500
    assert request.output_format == internal.OutputFormat("json_schema", WEATHER, "w")
    assert (request.parallel_tool_calls, request.user) == (False, "u-42")


@pytest.mark.parametrize(
    ("field", "value"),
    [("previous_response_id", "resp_1"), ("conversation", "conv_1")],
)
def test_stored_state_is_refused_with_a_400_naming_the_field(field: str, value: str) -> None:
    with pytest.raises(GatewayError) as caught:
        SHAPE.to_internal({"model": "m", "input": "hi", field: value}, internal.Unportable())
    assert caught.value.status == 400 and caught.value.param == field
    assert "does not keep" in caught.value.message


def test_fields_without_an_equivalent_are_refused_or_dropped_by_policy() -> None:
    request = {"model": "m", "input": "hi", "top_logprobs": 5, "tools": [{"type": "web_search"}]}
    with pytest.raises(GatewayError, match="top_logprobs"):
        SHAPE.to_internal(request, internal.Unportable())
    dropping = internal.Unportable(drop=True)
    SHAPE.to_internal(request, dropping)
    assert dropping.dropped == ["top_logprobs", "tools"]


def claude_answer() -> internal.Response:
    return internal.Response(
        id="msg_01abc",
        model="claude-sonnet-4-6",
        parts=[
            internal.Reasoning(text="Think", signature="c2ln"),
            internal.Text("Calling"),
            internal.ToolCall("toolu_9", "weather", '{"city":"Oslo"}'),
        ],
        stop="tool_use",
        usage=Usage(input_tokens=120, output_tokens=40, cache_read_tokens=100, reasoning_tokens=7),
    )


def test_an_answer_becomes_a_response_the_sdk_reads() -> None:
    request = internal.Request(model="claude-sonnet-4-6", messages=[])
    out = SHAPE.response_from_internal(claude_answer(), request)
    response = Response.model_validate(out)
    assert response.id.startswith("resp_metis_") and response.status == "completed"
    assert [item.type for item in response.output] == ["reasoning", "message", "function_call"]
    assert response.output_text == "Calling"
    assert response.output[2].call_id == "toolu_9"  # type: ignore[union-attr]
    assert response.usage is not None
    assert response.usage.input_tokens_details.cached_tokens == 100
    assert response.usage.output_tokens_details.reasoning_tokens == 7
    back = SHAPE.to_internal(
        {"model": "m", "input": [item.model_dump() for item in response.output]},
        internal.Unportable(),
    )
    assert back.messages[0].parts[0] == internal.Reasoning(text="Think", signature="c2ln")


def test_the_stream_writer_emits_the_full_numbered_sequence_ending_with_usage() -> None:
    answer = claude_answer()
    request = internal.Request(model="claude-sonnet-4-6", messages=[], stream=True)
    writer = SHAPE.stream_writer(request)
    stream: list[internal.StreamEvent] = [internal.Start("msg_01abc", "claude-sonnet-4-6")]
    empty = [internal.Reasoning(), internal.Text(""), internal.ToolCall("toolu_9", "weather", "")]
    for i, part in enumerate(answer.parts):
        stream.append(internal.PartStart(i, empty[i]))
        text = part.text if isinstance(part, internal.Text | internal.Reasoning) else part.arguments
        stream += [internal.PartDelta(i, text[:2]), internal.PartDelta(i, text[2:])]
        if isinstance(part, internal.Reasoning):
            stream.append(internal.PartDelta(i, signature="c2ln"))
        stream.append(internal.PartStop(i))
    stream += [internal.Finish("tool_use", answer.usage), internal.Done()]
    raw = b"".join(data for event in stream for data in writer.write(event))
    raw += b"".join(writer.finish())

    parsed = [EVENTS.validate_python(json.loads(e.data)) for e in SSEParser().feed(raw)]
    assert [e.sequence_number for e in parsed] == list(range(len(parsed)))
    kinds = [e.type for e in parsed]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.reasoning_summary_part.added",
    ]
    assert kinds.count("response.output_item.done") == 3
    final = parsed[-1]
    assert final.type == "response.completed"
    unstreamed = SHAPE.response_from_internal(answer, request)
    assert final.response.output == Response.model_validate(unstreamed).output
    assert final.response.usage == Response.model_validate(unstreamed).usage


def test_a_provider_error_mid_stream_fails_the_response() -> None:
    writer = SHAPE.stream_writer(internal.Request(model="claude-haiku-4-5", messages=[]))
    writer.write(internal.Start("msg_1", "claude-haiku-4-5"))
    raw = b"".join(writer.write(internal.Error("overloaded")))
    kinds = [e.event for e in SSEParser().feed(raw)]
    assert kinds == ["error", "response.failed"]
    assert writer.finish() == []


def test_the_reader_turns_a_recorded_stream_into_internal_events() -> None:
    reader = SHAPE.stream_reader()
    out = [e for event in events("tool_call") for e in reader.feed(event)] + reader.finish()
    assert isinstance(out[0], internal.Start)
    call = internal.ToolCall("call_Xb7kQ2mN9pL4rT6v", "get_weather", "")
    assert out[1] == internal.PartStart(0, call)
    arguments = "".join(e.text for e in out if isinstance(e, internal.PartDelta))
    assert json.loads(arguments)["unit"] == "celsius"
    assert out[-2] == internal.Finish("tool_use", Usage(input_tokens=81, output_tokens=24))
    assert out[-1] == internal.Done()
    assert answers.to_internal(body("reasoning")).parts[0] == internal.Reasoning(
        text=body("reasoning")["output"][0]["summary"][0]["text"],
        encrypted=body("reasoning")["output"][0]["encrypted_content"],
    )


_KEYS = [
    "type",
    "output",
    "content",
    "text",
    "item",
    "response",
    "output_index",
    "delta",
    "summary",
    "encrypted_content",
    "usage",
    "status",
    "incomplete_details",
    "error",
]
_JSON = st.recursive(
    st.none()
    | st.integers()
    | st.sampled_from(
        [
            "message",
            "function_call",
            "reasoning",
            "output_text",
            "incomplete",
            "response.created",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.completed",
            "response.failed",
            "error",
        ]
    ),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(_KEYS), children, max_size=5)
    ),
    max_leaves=20,
)


@given(payloads=st.lists(_JSON, max_size=6))
def test_a_providers_garbage_never_raises(payloads: list[Any]) -> None:
    reader = SHAPE.stream_reader()
    for payload in payloads:
        assert isinstance(reader.feed(SSEEvent(None, json.dumps(payload), b"")), list)
        if isinstance(payload, dict):
            assert isinstance(SHAPE.response_to_internal(payload), internal.Response)
    assert isinstance(reader.finish(), list)


def test_claudes_redacted_thinking_survives_a_round_trip_through_a_responses_client() -> None:
    """A Claude answer with thinking and redacted thinking, shown to a Responses caller and
    handed back in its next turn, reaches Claude again with both blocks intact."""
    claude = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [
            {"type": "thinking", "thinking": "Let me see.", "signature": "sig-1"},
            {"type": "redacted_thinking", "data": "opaque-2"},
            {"type": "text", "text": "Hello."},
        ],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 5, "output_tokens": 7},
    }
    request = internal.Request(model="claude-sonnet-4-5", messages=[])
    shown = answers.from_internal(claude_answers.response_to_internal(claude), request)
    handed_back = [item for item in shown["output"] if item["type"] == "reasoning"]
    next_turn = {"model": "claude-sonnet-4-5", "input": [*handed_back, user("Go on.")]}
    unportable = internal.Unportable()
    sent = claude_requests.from_internal(
        responses_requests.to_internal(next_turn, unportable), unportable
    )
    blocks = [b for m in sent["messages"] for b in m["content"] if isinstance(b, dict)]
    assert {"type": "thinking", "thinking": "Let me see.", "signature": "sig-1"} in blocks
    assert {"type": "redacted_thinking", "data": "opaque-2"} in blocks


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
