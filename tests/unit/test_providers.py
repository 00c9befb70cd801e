from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.providers import PROVIDERS
from gateway.providers.anthropic import Anthropic
from gateway.providers.base import Usage
from gateway.providers.openai import OpenAI
from gateway.shapes import SHAPES, Shape, WireShape
from gateway.shapes.anthropic import AnthropicMessages
from gateway.shapes.openai_chat import OpenAIChat, ensure_stream_usage, is_usage_only_chunk
from gateway.sse import SSEEvent, SSEParser

FIXTURES = Path(__file__).parent.parent / "fixtures"
# Recorded completions by wire shape: usage is read by the shape spoken to the provider.
COMPLETIONS = [
    (shape.value, path.stem)
    for shape in SHAPES
    for path in sorted((FIXTURES / shape.value).glob("*.json"))
]


def stream_events(provider: str, completion: str) -> list[SSEEvent]:
    parser = SSEParser()
    return parser.feed((FIXTURES / provider / f"{completion}.sse").read_bytes()) + parser.flush()


def streamed_usage(provider: str, completion: str) -> Usage:
    usage = Usage()
    for event in stream_events(provider, completion):
        usage = SHAPES[Shape(provider)].usage_from_event(event, usage)
    return usage


def body_usage(provider: str, completion: str) -> Usage:
    body = json.loads((FIXTURES / provider / f"{completion}.json").read_text())
    return SHAPES[Shape(provider)].usage_from_body(body)


def sse(payload: dict[str, Any], event: str | None = None) -> SSEEvent:
    data = json.dumps(payload)
    return SSEEvent(event=event, data=data, raw=f"data: {data}\n\n".encode())


def test_every_shape_has_all_four_recorded_completions() -> None:
    for shape in SHAPES:
        assert len([c for p, c in COMPLETIONS if p == shape.value]) == 4, shape


@pytest.mark.parametrize(("provider", "completion"), COMPLETIONS)
def test_streamed_and_unstreamed_completions_yield_equal_usage(
    provider: str, completion: str
) -> None:
    usage = body_usage(provider, completion)
    assert usage.input_tokens > 0 and usage.output_tokens > 0
    assert streamed_usage(provider, completion) == usage


@pytest.mark.parametrize(
    ("provider", "completion", "expected"),
    [
        ("anthropic", "text", Usage(input_tokens=14, output_tokens=12)),
        (
            "anthropic",
            "cache",  # input_tokens 21 excludes the 8000 read and 2500 written
            Usage(
                input_tokens=10521,
                output_tokens=17,
                cache_read_tokens=8000,
                cache_write_tokens=2500,
                cache_write_1h_tokens=2000,
            ),
        ),
        ("anthropic", "thinking", Usage(input_tokens=38, output_tokens=352, reasoning_tokens=214)),
        ("openai", "cache", Usage(input_tokens=2070, output_tokens=12, cache_read_tokens=1920)),
        ("openai", "reasoning", Usage(input_tokens=19, output_tokens=215, reasoning_tokens=192)),
    ],
)
def test_recorded_usage_is_read_in_metis_terms(
    provider: str, completion: str, expected: Usage
) -> None:
    assert body_usage(provider, completion) == expected


def test_anthropic_message_delta_is_cumulative_so_the_last_one_wins() -> None:
    anthropic = AnthropicMessages()
    usage = anthropic.usage_from_event(
        sse({"type": "message_start", "message": {"usage": {"input_tokens": 10}}}, "message_start"),
        Usage(),
    )
    for output in (5, 9, 30):
        delta = sse({"type": "message_delta", "usage": {"output_tokens": output}}, "message_delta")
        usage = anthropic.usage_from_event(delta, usage)
    assert usage == Usage(input_tokens=10, output_tokens=30)


def test_anthropic_message_delta_input_counts_replace_the_start_and_nulls_do_not() -> None:
    start = Usage(input_tokens=110, output_tokens=1, cache_read_tokens=100)
    delta = {
        "type": "message_delta",
        "usage": {"input_tokens": 50, "cache_read_input_tokens": None, "output_tokens": 7},
    }
    usage = AnthropicMessages().usage_from_event(sse(delta, "message_delta"), start)
    assert usage == Usage(input_tokens=150, output_tokens=7, cache_read_tokens=100)


def test_anthropic_cache_writes_without_a_ttl_breakdown_are_all_five_minute() -> None:
    body = {"usage": {"input_tokens": 3, "cache_creation_input_tokens": 40, "output_tokens": 2}}
    usage = AnthropicMessages().usage_from_body(body)
    assert (usage.input_tokens, usage.cache_write_tokens, usage.cache_write_1h_tokens) == (
        43,
        40,
        0,
    )


def test_anthropic_text_covers_visible_thinking_and_tool_input() -> None:
    anthropic = AnthropicMessages()
    thinking = "".join(anthropic.text_from_event(e) for e in stream_events("anthropic", "thinking"))
    assert thinking.startswith("The user asks for 27 * 453.") and thinking.endswith("12,231.")
    tool = "".join(anthropic.text_from_event(e) for e in stream_events("anthropic", "tool_call"))
    assert tool.endswith('{"location":"San Francisco, CA","unit":"celsius"}')


def test_openai_text_covers_content_and_tool_call_arguments() -> None:
    openai = OpenAIChat()
    text = "".join(openai.text_from_event(e) for e in stream_events("openai", "text"))
    assert text == "Hello! How can I assist you today?"
    tool = "".join(openai.text_from_event(e) for e in stream_events("openai", "tool_call"))
    assert json.loads(tool) == {"location": "San Francisco, CA", "unit": "celsius"}
    delta = {"choices": [{"delta": {"reasoning_content": "hm", "content": "ok"}}]}
    assert openai.text_from_event(sse(delta)) == "okhm"


_KEYS = [
    "type",
    "usage",
    "message",
    "delta",
    "choices",
    "text",
    "input_tokens",
    "output_tokens",
    "cache_creation",
    "cache_creation_input_tokens",
    "ephemeral_1h_input_tokens",
    "output_tokens_details",
    "prompt_tokens_details",
    "tool_calls",
    "function",
]
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.sampled_from(["message_start", "message_delta", "content_block_delta", "text_delta"]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(_KEYS), children, max_size=5)
    ),
    max_leaves=16,
)


@pytest.mark.parametrize("wire", SHAPES.values(), ids=[s.value for s in SHAPES])
@given(payload=_JSON, name=st.sampled_from([None, "message_start", "message_delta"]))
def test_malformed_events_never_raise(wire: WireShape, payload: object, name: str | None) -> None:
    so_far = Usage(input_tokens=3)
    for data in (json.dumps(payload), "[DONE]", '{"usage": '):
        event = SSEEvent(event=name, data=data, raw=b"")
        assert isinstance(wire.usage_from_event(event, so_far), Usage)
        assert isinstance(wire.text_from_event(event), str)
    if isinstance(payload, dict):
        assert isinstance(wire.usage_from_body(payload), Usage)


def test_anthropic_request_forwards_client_headers_but_never_credentials() -> None:
    client = {
        "Anthropic-Beta": "prompt-caching-2024-07-31",
        "User-Agent": "claude-cli/2.0.1",
        "X-Stainless-Retry-Count": "0",
        "x-api-key": "gw_secret",
        "Authorization": "Bearer gw_secret",
        "x-metis-token": "gw_secret",
        "x-metis-user": "agent-7",
        "Cookie": "s=1",
        "Connection": "keep-alive",
        "Host": "127.0.0.1:8422",
        "Content-Length": "12",
        "Transfer-Encoding": "chunked",
        "X-Forwarded-For": "10.0.0.1",
    }
    request = Anthropic().build_request(
        path="/v1/messages?beta=true",
        body=b"{}",
        client_headers=client,
        api_key="sk-ant-upstream",
        base_url="https://api.anthropic.com/",
    )
    assert request.method == "POST"
    assert request.url == "https://api.anthropic.com/v1/messages?beta=true"
    assert request.body == b"{}"
    assert request.headers == {
        "anthropic-beta": "prompt-caching-2024-07-31",
        "anthropic-version": "2023-06-01",
        "user-agent": "claude-cli/2.0.1",
        "x-stainless-retry-count": "0",
        "content-type": "application/json",
        "x-api-key": "sk-ant-upstream",
    }


def test_anthropic_request_keeps_the_clients_api_version() -> None:
    request = Anthropic().build_request(
        path="/v1/messages",
        body=b"{}",
        client_headers={"anthropic-version": "2024-01-01"},
        api_key="k",
        base_url="https://api.anthropic.com",
    )
    assert request.headers["anthropic-version"] == "2024-01-01"


@pytest.mark.parametrize(
    ("base_url", "url"),
    [
        ("https://api.openai.com", "https://api.openai.com/v1/chat/completions"),
        ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1/chat/completions"),
        ("https://openrouter.ai/api/v1/", "https://openrouter.ai/api/v1/chat/completions"),
    ],
)
def test_openai_request_uses_bearer_auth_and_never_doubles_v1(base_url: str, url: str) -> None:
    request = OpenAI().build_request(
        path="/v1/chat/completions",
        body=b"{}",
        client_headers={"OpenAI-Organization": "org-1", "Authorization": "Bearer gw_x"},
        api_key="sk-upstream",
        base_url=base_url,
    )
    assert request.url == url
    assert request.headers["authorization"] == "Bearer sk-upstream"
    assert request.headers["openai-organization"] == "org-1"


def test_stream_usage_is_requested_and_the_clients_own_request_is_reported() -> None:
    body: dict[str, Any] = {"stream": True}
    assert ensure_stream_usage(body) is False
    assert body["stream_options"] == {"include_usage": True}
    asked: dict[str, Any] = {"stream": True, "stream_options": {"include_usage": True}}
    assert ensure_stream_usage(asked) is True
    declined: dict[str, Any] = {"stream": True, "stream_options": {"include_usage": False}}
    assert ensure_stream_usage(declined) is False
    assert declined["stream_options"] == {"include_usage": True}
    unstreamed: dict[str, Any] = {"stream": False}
    assert ensure_stream_usage(unstreamed) is False
    assert "stream_options" not in unstreamed


def test_only_the_final_usage_chunk_counts_as_usage_only() -> None:
    events = stream_events("openai", "text")
    assert [is_usage_only_chunk(e) for e in events][-3:] == [False, True, False]
    assert not any(is_usage_only_chunk(e) for e in events[:-2])


def test_every_provider_serves_its_preferred_shape_first_at_a_path_of_its_own() -> None:
    assert PROVIDERS["anthropic"].shapes == (Shape.ANTHROPIC,)
    assert PROVIDERS["openai"].shapes == (Shape.OPENAI, Shape.RESPONSES)
    for provider in PROVIDERS.values():
        paths = {provider.generate_path("m", s, stream=False) for s in provider.shapes}
        assert len(paths) == len(provider.shapes)
