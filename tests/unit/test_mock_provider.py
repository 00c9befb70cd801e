"""The mock provider speaks both wire formats well enough for the real SDKs to accept it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from mock_provider import MockProviderThread

CLAUDE, GPT, GPT_REASONING = "claude-sonnet-4-6", "gpt-4.1", "gpt-5-mini"
PROPERTIES = {"path": {"type": "string"}, "lines": {"type": "integer"}, "raw": {"type": "boolean"}}
SCHEMA = {"type": "object", "properties": PROPERTIES, "required": ["path", "lines", "raw"]}
ANTHROPIC_TOOLS: Any = [{"name": "read_file", "description": "Read", "input_schema": SCHEMA}]
OPENAI_TOOLS: Any = [{"type": "function", "function": {"name": "read_file", "parameters": SCHEMA}}]
SCHEMA_ARGUMENTS = {"path": "mock", "lines": 1, "raw": True}


def user(text: str) -> Any:
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="module")
def mock() -> Iterator[MockProviderThread]:
    with MockProviderThread() as thread:
        yield thread


@pytest.fixture
def claude(mock: MockProviderThread) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=mock.url, api_key="sk-ant-test", max_retries=0)


@pytest.fixture
def gpt(mock: MockProviderThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=mock.url + "/v1", api_key="sk-test", max_retries=0)


def test_anthropic_stream_and_message_agree_on_text_and_usage(claude: anthropic.Anthropic) -> None:
    request: Any = {
        "model": CLAUDE,
        "max_tokens": 2048,  # above the thinking budget, as the API requires
        "messages": user("Tell me about streaming responses"),
        "thinking": {"type": "enabled", "budget_tokens": 1024},
    }
    message = claude.messages.create(**request)
    with claude.messages.stream(**request) as stream:
        streamed_text = "".join(stream.text_stream)
        streamed = stream.get_final_message()

    text = message.content[1].text  # type: ignore[union-attr]
    assert message.content[0].type == "thinking"
    assert text.startswith(f"Hello from mock {CLAUDE}. You said: Tell me about")
    assert streamed_text == text
    assert streamed.content[0].thinking == message.content[0].thinking  # type: ignore[union-attr]
    assert streamed.usage.model_dump() == message.usage.model_dump()
    assert message.usage.output_tokens > len(text.split())  # thinking counts as output
    assert streamed.stop_reason == message.stop_reason == "end_turn"


def test_anthropic_sse_events_come_in_the_documented_order(mock: MockProviderThread) -> None:
    body = {"model": CLAUDE, "max_tokens": 50, "stream": True, "messages": user("hi")}
    response = httpx.post(
        mock.url + "/v1/messages?beta=true", json=body, headers={"x-api-key": "sk-ant-test"}
    )
    names = [line[7:] for line in response.text.splitlines() if line.startswith("event: ")]

    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["request-id"].startswith("req_")
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert set(names[3:-3]) == {"content_block_delta"} and len(names[3:-3]) > 3
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]


def test_openai_stream_and_completion_agree_on_text_and_usage(gpt: openai.OpenAI) -> None:
    request: Any = {"model": GPT_REASONING, "messages": user("Tell me about reasoning")}
    completion = gpt.chat.completions.create(**request)
    chunks = list(
        gpt.chat.completions.create(**request, stream=True, stream_options={"include_usage": True})
    )
    streamed_text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    assert streamed_text == completion.choices[0].message.content
    assert chunks[-1].choices == [] and chunks[-1].usage == completion.usage
    assert completion.usage is not None and completion.usage.completion_tokens_details
    reasoning = completion.usage.completion_tokens_details.reasoning_tokens
    assert reasoning and completion.usage.completion_tokens == reasoning + len(chunks) - 3
    assert completion.choices[0].finish_reason == "stop"


def test_openai_usage_chunk_is_sent_only_when_asked(gpt: openai.OpenAI) -> None:
    plain = list(gpt.chat.completions.create(model=GPT, messages=user("hi"), stream=True))

    assert all(chunk.choices and chunk.usage is None for chunk in plain)
    assert plain[-1].choices[0].finish_reason == "stop"


def test_anthropic_tool_use_then_tool_result(claude: anthropic.Anthropic) -> None:
    request: Any = {
        "model": CLAUDE,
        "max_tokens": 200,
        "tools": ANTHROPIC_TOOLS,
        "messages": user("read it please [[tool]]"),
    }
    message = claude.messages.create(**request)
    with claude.messages.stream(**request) as stream:
        deltas = [e.delta.partial_json for e in stream if e.type == "content_block_delta"]  # type: ignore[union-attr]
        streamed = stream.get_final_message()
    call = message.content[0]
    assert call.type == "tool_use" and call.name == "read_file"
    assert call.input == streamed.content[0].input == SCHEMA_ARGUMENTS  # type: ignore[union-attr]
    assert len(deltas) > 1 and message.stop_reason == streamed.stop_reason == "tool_use"
    assert streamed.usage.model_dump() == message.usage.model_dump()

    result = {"type": "tool_result", "tool_use_id": call.id, "content": "line one of the file"}
    history = [*request["messages"], {"role": "assistant", "content": message.content}]
    answer = claude.messages.create(
        **{**request, "messages": [*history, {"role": "user", "content": [result]}]}
    )
    assert answer.stop_reason == "end_turn"
    assert answer.content[0].text == "Tool said: line one of the file"  # type: ignore[union-attr]


def test_tool_directive_names_the_tool_and_its_exact_arguments(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model=CLAUDE,
        max_tokens=100,
        tools=ANTHROPIC_TOOLS,
        messages=user('[[tool:read_file {"path": "/etc/hosts", "mode": "r"}]]'),
    )
    assert message.content[0].input == {"path": "/etc/hosts", "mode": "r"}  # type: ignore[union-attr]


def test_openai_forced_tool_call_streams_arguments(gpt: openai.OpenAI) -> None:
    request: Any = {
        "model": GPT,
        "messages": user("no directive needed"),
        "tools": OPENAI_TOOLS,
        "tool_choice": "required",
    }
    completion = gpt.chat.completions.create(**request)
    chunks = list(gpt.chat.completions.create(**request, stream=True))
    pieces = [c.choices[0].delta.tool_calls[0].function.arguments for c in chunks[:-1]]  # type: ignore[index,union-attr]

    call = completion.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "read_file"  # type: ignore[union-attr]
    assert "".join(pieces) == call.function.arguments == '{"path":"mock","lines":1,"raw":true}'  # type: ignore[union-attr]
    assert len(pieces) > 2
    assert (
        completion.choices[0].finish_reason == chunks[-1].choices[0].finish_reason == "tool_calls"
    )

    tool_turn = [
        {"role": "assistant", "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "42 lines"},
    ]
    answer = gpt.chat.completions.create(**{**request, "messages": request["messages"] + tool_turn})
    assert answer.choices[0].message.content == "Tool said: 42 lines"


def test_max_tokens_and_stop_sequences_end_the_reply(
    claude: anthropic.Anthropic, gpt: openai.OpenAI
) -> None:
    short = claude.messages.create(model=CLAUDE, max_tokens=3, messages=user("hi"))
    stopped = claude.messages.create(
        model=CLAUDE, max_tokens=100, stop_sequences=["mock"], messages=user("hi")
    )
    length = gpt.chat.completions.create(model=GPT, max_completion_tokens=2, messages=user("hi"))
    stop = gpt.chat.completions.create(model=GPT, stop=["mock"], messages=user("hi"))

    assert (short.stop_reason, short.usage.output_tokens) == ("max_tokens", 3)
    assert (stopped.stop_reason, stopped.stop_sequence) == ("stop_sequence", "mock")
    assert stopped.content[0].text == "Hello from "  # type: ignore[union-attr]
    assert length.choices[0].finish_reason == "length"
    assert length.choices[0].message.content == "Hello from"
    assert (stop.choices[0].finish_reason, stop.choices[0].message.content) == (
        "stop",
        "Hello from ",
    )


def test_cache_control_writes_then_reads_the_prefix(claude: anthropic.Anthropic) -> None:
    system: Any = [
        {"type": "text", "text": "S" * 4000, "cache_control": {"type": "ephemeral", "ttl": "1h"}}
    ]
    turn: Any = [{"type": "text", "text": "Q" * 800, "cache_control": {"type": "ephemeral"}}]
    request: Any = {
        "model": "claude-cache-test",
        "max_tokens": 5,
        "system": system,
        "messages": [{"role": "user", "content": turn}],
    }
    first = claude.messages.create(**request).usage
    second = claude.messages.create(**request).usage

    assert first.cache_creation and first.cache_creation.ephemeral_1h_input_tokens > 1000
    assert 0 < first.cache_creation.ephemeral_5m_input_tokens < 300
    assert first.cache_read_input_tokens == 0 and first.input_tokens >= 1
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert second.cache_creation_input_tokens == 0


def test_429_fault_fails_only_the_first_n_requests(
    claude: anthropic.Anthropic, gpt: openai.OpenAI
) -> None:
    headers = {"x-mock-fault": "429*2", "x-mock-fault-id": "count-test"}
    for _ in range(2):
        with pytest.raises(anthropic.RateLimitError) as caught:
            claude.messages.create(
                model=CLAUDE, max_tokens=5, messages=user("hi"), extra_headers=headers
            )
        assert caught.value.response.headers["retry-after-ms"] == "10"
    claude.messages.create(model=CLAUDE, max_tokens=5, messages=user("hi"), extra_headers=headers)

    directive = user("[[fault:429*1 id=openai-count]] hi")
    with pytest.raises(openai.RateLimitError) as limited:
        gpt.chat.completions.create(model=GPT, messages=directive)
    assert limited.value.response.headers["retry-after"] == "0"
    assert gpt.chat.completions.create(model=GPT, messages=directive).choices


def test_error_faults_use_each_providers_format(
    claude: anthropic.Anthropic, gpt: openai.OpenAI
) -> None:
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        claude.messages.create(model=CLAUDE, max_tokens=5, messages=user("[[fault:529]]"))
    with pytest.raises(openai.InternalServerError) as broken:
        gpt.chat.completions.create(
            model=GPT, messages=user("hi"), extra_headers={"x-mock-fault": "500"}
        )

    assert overloaded.value.status_code == 529
    assert overloaded.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    assert broken.value.body["type"] == "server_error"  # type: ignore[index]


def test_cut_streams_raise_in_the_sdks(claude: anthropic.Anthropic, gpt: openai.OpenAI) -> None:
    cut: Any = {"extra_headers": {"x-mock-fault": "cut:4"}}
    with (
        pytest.raises(Exception, match="peer closed connection"),
        claude.messages.stream(model=CLAUDE, max_tokens=50, messages=user("hi"), **cut) as stream,
    ):
        stream.get_final_message()
    with pytest.raises(openai.APIConnectionError) as caught:  # the SDK wraps the transport error
        list(gpt.chat.completions.create(model=GPT, messages=user("hi"), stream=True, **cut))
    assert "peer closed connection" in str(caught.value.__cause__)


def test_missing_provider_key_is_401_in_each_shape(mock: MockProviderThread) -> None:
    body = {"model": CLAUDE, "max_tokens": 5, "messages": user("hi")}
    anthropic_401 = httpx.post(mock.url + "/v1/messages", json=body)
    openai_401 = httpx.post(mock.url + "/v1/chat/completions", json=body)

    assert anthropic_401.status_code == openai_401.status_code == 401
    assert anthropic_401.json()["error"]["type"] == "authentication_error"
    assert openai_401.json()["error"]["type"] == "invalid_request_error"


def test_request_log_records_calls_and_disconnects(mock: MockProviderThread) -> None:
    log_url = mock.url + "/_mock/requests"
    assert httpx.delete(log_url).status_code == 204
    body = {"model": GPT, "messages": user("hang on"), "stream": True}
    headers = {"Authorization": "Bearer sk-test", "X-Mock-Fault": "hang"}
    with (
        pytest.raises(httpx.ReadTimeout),
        httpx.stream(
            "POST", mock.url + "/v1/chat/completions?x=1", json=body, headers=headers, timeout=0.3
        ) as response,
    ):
        response.read()
    time.sleep(0.2)  # the server notices the closed socket on its next poll

    [record] = httpx.get(log_url).json()
    assert record["method"] == "POST" and record["path"] == "/v1/chat/completions"
    assert record["query"] == "x=1"
    assert record["headers"]["x-mock-fault"] == "hang" and record["body"] == body
    assert record["disconnected"] is True and record["finished_at"] is not None
    httpx.delete(log_url)
    assert httpx.get(log_url).json() == []


def test_fixed_and_gzip_replies_for_benchmarks(mock: MockProviderThread) -> None:
    body = {"model": GPT, "messages": user("anything")}
    headers = {"Authorization": "Bearer sk-test", "x-mock-fixed": "1", "x-mock-gzip": "1"}
    response = httpx.post(mock.url + "/v1/chat/completions", json=body, headers=headers)

    assert response.headers["content-encoding"] == "gzip"
    assert response.json()["choices"][0]["message"]["content"] == "Hello from the mock provider."


SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
    "required": ["city", "days"],
    "additionalProperties": False,
}


def test_anthropic_structured_output_is_json_text_matching_the_schema(
    claude: anthropic.Anthropic,
) -> None:
    request: Any = {"model": CLAUDE, "max_tokens": 100, "messages": user("Plan a trip")}
    config = {"format": {"type": "json_schema", "schema": SCHEMA}}
    message = claude.messages.create(**request, extra_body={"output_config": config})
    with claude.messages.stream(**request, extra_body={"output_config": config}) as stream:
        streamed = stream.get_final_message()
    assert json.loads(message.content[0].text) == {"city": "mock", "days": 1}  # type: ignore[union-attr]
    assert streamed.content[0].text == message.content[0].text  # type: ignore[union-attr]
    assert streamed.usage.output_tokens == message.usage.output_tokens


def test_anthropic_refuses_what_the_api_refuses_in_thinking_and_structured_output(
    claude: anthropic.Anthropic,
) -> None:
    hi: Any = {"max_tokens": 100, "messages": user("hi")}
    for extra in (
        {"model": CLAUDE, "thinking": {"type": "enabled", "budget_tokens": 1024}},
        {"model": CLAUDE, "thinking": {"type": "enabled", "budget_tokens": 10}},
        {
            "model": "claude-3-5-haiku-latest",
            "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}},
        },
    ):
        with pytest.raises(anthropic.BadRequestError):
            claude.messages.create(**hi, model=extra.pop("model"), extra_body=extra)


def test_openai_response_format_answers_json(gpt: openai.OpenAI) -> None:
    fmt: Any = {"type": "json_schema", "json_schema": {"name": "trip", "schema": SCHEMA}}
    completion = gpt.chat.completions.create(
        model="gpt-4.1", messages=user("Plan a trip"), response_format=fmt
    )
    assert json.loads(completion.choices[0].message.content or "") == {"city": "mock", "days": 1}
    any_object = gpt.chat.completions.create(
        model="gpt-4.1", messages=user("hi"), response_format={"type": "json_object"}
    )
    assert json.loads(any_object.choices[0].message.content or "")["reply"].startswith("Hello")


def test_openai_reasoning_effort_is_refused_by_models_that_do_not_reason(
    gpt: openai.OpenAI,
) -> None:
    with pytest.raises(openai.BadRequestError):
        gpt.chat.completions.create(model="gpt-4.1", messages=user("hi"), reasoning_effort="low")
    low = gpt.chat.completions.create(model="gpt-5", messages=user("hi"), reasoning_effort="low")
    high = gpt.chat.completions.create(model="gpt-5", messages=user("hi"), reasoning_effort="high")
    assert low.usage and high.usage
    assert low.usage.completion_tokens_details.reasoning_tokens < (  # type: ignore[union-attr]
        high.usage.completion_tokens_details.reasoning_tokens  # type: ignore[union-attr]
    )
