"""Requests translated to another shape through the internal form and back keep their
meaning; what cannot be carried is refused, naming the field."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.crossing import TranslatedEvents
from gateway.errors import GatewayError
from gateway.shapes import SHAPES, Shape, internal
from gateway.sse import SSEParser

ANTHROPIC, CHAT = SHAPES[Shape.ANTHROPIC], SHAPES[Shape.OPENAI]


def crossed(caller, provider, body: dict[str, Any], *, drop: bool = False) -> dict[str, Any]:
    unportable = internal.Unportable(drop=drop, target="the model")
    return provider.from_internal(caller.to_internal(body, unportable), unportable)


def to_openai(body: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic Messages body as a Chat Completions body."""
    return crossed(ANTHROPIC, CHAT, body)


def to_anthropic(body: dict[str, Any]) -> dict[str, Any]:
    """A Chat Completions body as an Anthropic Messages body."""
    return crossed(CHAT, ANTHROPIC, body)


text = st.text(min_size=1, max_size=20)
names = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)
ids = st.from_regex(r"toolu_[A-Za-z0-9]{4,10}", fullmatch=True)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3),
    max_leaves=6,
)
text_block = st.builds(lambda t: {"type": "text", "text": t}, text)
base64_image = st.builds(
    lambda mt, data: {
        "type": "image",
        "source": {"type": "base64", "media_type": mt, "data": data},
    },
    st.sampled_from(["image/png", "image/jpeg", "image/gif", "image/webp"]),
    st.from_regex(r"[A-Za-z0-9+/]{4,40}={0,2}", fullmatch=True),
)
url_image = st.builds(
    lambda path: {"type": "image", "source": {"type": "url", "url": f"https://img.test/{path}"}},
    names,
)
tool_use = st.builds(
    lambda id_, name, args: {"type": "tool_use", "id": id_, "name": name, "input": args},
    ids,
    names,
    st.dictionaries(names, json_values, max_size=3),
)
tool_result = st.builds(
    lambda id_, content: {"type": "tool_result", "tool_use_id": id_, "content": content},
    ids,
    text | st.lists(text_block, min_size=1, max_size=2),
)
user_message = st.builds(
    lambda results, parts: {"role": "user", "content": results + parts},
    st.lists(tool_result, max_size=2),
    st.lists(text_block | base64_image | url_image, min_size=1, max_size=3),
) | st.builds(lambda t: {"role": "user", "content": t}, text)
assistant_message = st.builds(
    lambda texts, calls: {"role": "assistant", "content": texts + calls},
    st.lists(text_block, max_size=2),
    st.lists(tool_use, max_size=2),
) | st.builds(lambda t: {"role": "assistant", "content": t}, text)
tool = st.builds(
    lambda name, description, props: {
        "name": name,
        **({"description": description} if description else {}),
        "input_schema": {"type": "object", "properties": {p: {"type": "string"} for p in props}},
    },
    names,
    st.none() | text,
    st.lists(names, max_size=3),
)


@st.composite
def anthropic_requests(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "claude-haiku-4-5",
        "max_tokens": draw(st.integers(1, 64000)),
        "messages": draw(st.lists(user_message | assistant_message, min_size=1, max_size=5)),
    }
    if system := draw(st.none() | text | st.lists(text_block, min_size=1, max_size=2)):
        body["system"] = system
    if tools := draw(st.lists(tool, max_size=3, unique_by=lambda t: t["name"])):
        body["tools"] = tools
        kind = draw(st.sampled_from(["auto", "any", "tool", "none", None]))
        if kind:
            body["tool_choice"] = {"type": kind}
            if kind == "tool":
                body["tool_choice"]["name"] = draw(st.sampled_from(tools))["name"]
            if kind != "none" and draw(st.booleans()):
                body["tool_choice"]["disable_parallel_tool_use"] = True
    optional = {
        "stop_sequences": st.lists(text, min_size=1, max_size=4),
        "temperature": st.floats(0, 1),
        "top_p": st.floats(0, 1),
        "stream": st.booleans(),
        "metadata": st.builds(lambda u: {"user_id": u}, names),
    }
    for name, strategy in optional.items():
        if draw(st.booleans()):
            body[name] = draw(strategy)
    return body


def normalised(body: dict[str, Any]) -> dict[str, Any]:
    """Same meaning, one spelling: strings as text blocks, adjacent same-role turns merged,
    `stream: false` as no stream."""
    out = {k: v for k, v in body.items() if k not in ("system", "messages")}
    if out.get("stream") is False:
        del out["stream"]
    system = body.get("system")
    out["system"] = [{"type": "text", "text": system}] if isinstance(system, str) else system
    merged: list[dict[str, Any]] = []
    for message in body["messages"]:
        content = message["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        blocks = [_result_blocks(b) for b in blocks]
        if merged and merged[-1]["role"] == message["role"]:
            merged[-1]["content"] = merged[-1]["content"] + blocks
        else:
            merged.append({"role": message["role"], "content": list(blocks)})
    out["messages"] = merged
    return out


def _result_blocks(block: dict[str, Any]) -> dict[str, Any]:
    if block.get("type") != "tool_result" or not isinstance(block["content"], str):
        return block
    return {**block, "content": [{"type": "text", "text": block["content"]}]}


@settings(max_examples=300, deadline=None)
@given(anthropic_requests())
def test_an_anthropic_request_survives_the_trip_through_the_openai_shape(body):
    assert normalised(to_anthropic(to_openai(body))) == normalised(body)


@settings(max_examples=100, deadline=None)
@given(anthropic_requests())
def test_the_openai_shape_of_a_request_is_stable_under_a_second_trip(body):
    once = to_openai(body)
    assert to_openai(to_anthropic(once)) == once


def refused(translate, body: dict[str, Any]) -> str | None:
    with pytest.raises(GatewayError) as caught:
        translate(body)
    assert caught.value.status == 400
    return caught.value.param


HI = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"seed": 7}, "seed"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"temperature": 1.5}, "temperature"),
        ({"some_new_field": 1}, "some_new_field"),
    ],
)
def test_openai_fields_claude_cannot_honour_are_refused_by_name(extra, param):
    assert refused(to_anthropic, {"model": "m", "messages": HI, **extra}) == param


def test_an_audio_part_and_a_late_system_message_are_refused_by_position():
    audio = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    body = {"model": "m", "messages": [{"role": "user", "content": [audio]}]}
    assert refused(to_anthropic, body) == "messages[0].content[0]"
    late = [*HI, {"role": "system", "content": "now be rude"}]
    assert refused(to_anthropic, {"model": "m", "messages": late}) == "messages[1]"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"top_k": 5}, "top_k"),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools[0]"),
        ({"thinking": {"type": "sometimes"}}, "thinking"),
        ({"output_config": {"task_budget": 5}}, "output_config.task_budget"),
        ({"stop_sequences": ["a", "b", "c", "d", "e"]}, "stop_sequences"),
        ({"container": "c_1"}, "container"),
    ],
)
def test_anthropic_fields_gpt_cannot_honour_are_refused_by_name(extra, param):
    assert refused(to_openai, {"model": "m", "max_tokens": 5, "messages": HI, **extra}) == param


def test_a_pdf_document_block_is_refused_by_position():
    document = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf"}}
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [document]}]}
    assert refused(to_openai, body) == "messages[0].content[0]"


def test_an_openai_request_without_a_limit_gets_the_documented_default():
    body = to_anthropic({"model": "m", "messages": HI, "user": "u1", "parallel_tool_calls": False})
    assert body["max_tokens"] == 4096
    assert body["metadata"] == {"user_id": "u1"}
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}


def events(raw: bytes) -> list:
    return SSEParser().feed(raw)


def test_an_openai_stream_becomes_anthropic_events_with_usage_last():
    chunks = b"".join(
        b"data: " + line + b"\n\n"
        for line in (
            b'{"id":"chatcmpl-1","model":"gpt-5-mini","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}',
            b'{"id":"chatcmpl-1","choices":[{"index":0,"delta":{"content":"Hi"}}]}',
            b'{"id":"chatcmpl-1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","function":{"name":"f","arguments":""}}]}}]}',
            b'{"id":"chatcmpl-1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]}}]}',
            b'{"id":"chatcmpl-1","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}',
            b'{"id":"chatcmpl-1","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":4}}}',
            b"[DONE]",
        )
    )
    translator = TranslatedEvents.between(CHAT, ANTHROPIC, internal.Request("gpt-5-mini", []))
    out = b"".join(b for event in events(chunks) for b in translator.feed(event))
    assert translator.finish() == []
    names = [e.event for e in events(out)]
    assert names == [
        "message_start",
        *["content_block_start", "content_block_delta", "content_block_stop"] * 2,
        "message_delta",
        "message_stop",
    ]
    final = events(out)[-2].data
    assert '"stop_reason":"tool_use"' in final
    assert '"input_tokens":6' in final and '"cache_read_input_tokens":4' in final


def test_an_anthropic_stream_cut_short_still_ends_with_done():
    message = {"id": "msg_1", "model": "claude-haiku-4-5", "usage": {"input_tokens": 3}}
    start = b"event: message_start\ndata: " + orjson.dumps(
        {"type": "message_start", "message": message}
    )
    start += b"\n\n"
    request = internal.Request("claude-haiku-4-5", [], stream_usage=True)
    translator = TranslatedEvents.between(ANTHROPIC, CHAT, request)
    out = b"".join(b for event in events(start) for b in translator.feed(event))
    tail = b"".join(translator.finish())
    assert b'"id":"chatcmpl-1"' in out and b'"role":"assistant"' in out
    assert tail.endswith(b"data: [DONE]\n\n") and b'"prompt_tokens":3' in tail


provider_junk = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(
        ["message_start", "content_block_start", "content_block_delta", "message_delta",
         "text_delta", "input_json_delta", "tool_use", "text", "thinking", "error", "[DONE]"]
    ),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(
        st.sampled_from(["type", "index", "delta", "content_block", "message", "usage",
                         "stop_reason", "choices", "tool_calls", "function", "id", "name",
                         "text", "partial_json", "content", "finish_reason", "error"]),
        inner,
        max_size=5,
    ),
    max_leaves=12,
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.lists(provider_junk, max_size=6))
def test_junk_from_a_provider_never_breaks_a_translated_stream(payloads):
    for provider, caller in ((ANTHROPIC, CHAT), (CHAT, ANTHROPIC)):
        relay = TranslatedEvents.between(provider, caller, internal.Request("m", []))
        for payload in payloads:
            data = orjson.dumps(payload).decode()
            event = SSEParser().feed(f"data: {data}\n\n".encode())[0]
            assert all(isinstance(raw, bytes) for raw in relay.feed(event))
        assert all(isinstance(raw, bytes) for raw in relay.finish())


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["id", "model", "content", "choices", "usage", "stop_reason"]),
        provider_junk,
        max_size=5,
    )
)
def test_junk_from_a_provider_never_breaks_a_translated_answer(body):
    for provider, caller in ((ANTHROPIC, CHAT), (CHAT, ANTHROPIC)):
        answer = caller.response_from_internal(
            provider.response_to_internal(body), internal.Request("m", [])
        )
        assert orjson.dumps(answer)
