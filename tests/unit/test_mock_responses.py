"""The mock provider speaks the OpenAI Responses API well enough for the real SDK to accept it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest

from mock_provider import MockProviderThread

GPT, GPT_REASONING = "gpt-4.1", "gpt-5-mini"
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
TOOLS: Any = [{"type": "function", "name": "get_weather", "parameters": SCHEMA}]


@pytest.fixture(scope="module")
def mock() -> Iterator[MockProviderThread]:
    with MockProviderThread() as thread:
        yield thread


@pytest.fixture
def gpt(mock: MockProviderThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=mock.url + "/v1", api_key="sk-test", max_retries=0)


def sse(mock: MockProviderThread, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The stream's events, up to where it ended (or was cut)."""
    text = ""
    with httpx.stream(
        "POST",
        mock.url + "/v1/responses",
        json={**body, "stream": True},
        headers={"authorization": "Bearer sk-test"},
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        with contextlib.suppress(httpx.RemoteProtocolError):
            for chunk in response.iter_text():
                text += chunk
    events = []
    for block in text.split("\n\n"):
        if block:
            name, data = block.split("\n")
            payload = orjson.loads(data.removeprefix("data: "))
            assert name == "event: " + payload["type"]
            events.append(payload)
    return events


def test_stream_and_response_agree_on_text_and_usage(gpt: openai.OpenAI) -> None:
    request: Any = {"model": GPT, "input": "Tell me about streaming", "instructions": "Be brief"}
    response = gpt.responses.create(**request)
    with gpt.responses.stream(**request) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        streamed = stream.get_final_response()

    assert response.output_text.startswith(f"Hello from mock {GPT}. You said: Tell me about")
    assert "".join(deltas) == streamed.output_text == response.output_text
    assert streamed.usage == response.usage
    assert response.usage is not None
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    assert response.status == streamed.status == "completed"
    assert response.instructions == "Be brief"


def test_events_come_in_the_documented_order_and_are_numbered(mock: MockProviderThread) -> None:
    events = sse(mock, {"model": GPT, "input": "hi there"})
    kinds = [e["type"] for e in events]

    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert set(kinds[4:-4]) == {"response.output_text.delta"}
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert events[0]["response"]["status"] == "in_progress"
    assert events[0]["response"]["usage"] is None
    assert events[-1]["response"]["usage"]["output_tokens"] == len(kinds[4:-4])


def test_a_tool_call_then_its_output_turn(gpt: openai.OpenAI, mock: MockProviderThread) -> None:
    first = gpt.responses.create(model=GPT, input="Weather in Paris? [[tool]]", tools=TOOLS)
    call = first.output[0]
    events = sse(mock, {"model": GPT, "input": "Weather in Paris? [[tool]]", "tools": TOOLS})
    kinds = [e["type"] for e in events]

    assert call.type == "function_call"
    assert (call.name, orjson.loads(call.arguments)) == ("get_weather", {"city": "mock"})
    assert "response.function_call_arguments.delta" in kinds
    assert kinds[-3:] == [
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    second = gpt.responses.create(
        model=GPT,
        tools=TOOLS,
        input=[
            {"role": "user", "content": "Weather in Paris? [[tool]]"},
            call.model_dump(exclude_none=True),
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21C"},
        ],
    )
    assert second.output_text == "Tool said: sunny, 21C"


def test_reasoning_items_carry_summary_and_encrypted_content_only_when_asked(
    gpt: openai.OpenAI, mock: MockProviderThread
) -> None:
    plain = gpt.responses.create(model=GPT_REASONING, input="Think about it")
    asked: Any = {
        "model": GPT_REASONING,
        "input": "Think about it",
        "reasoning": {"effort": "high", "summary": "auto"},
        "include": ["reasoning.encrypted_content"],
        "store": False,
    }
    rich = gpt.responses.create(**asked)
    events = sse(mock, asked)
    kinds = [e["type"] for e in events]

    assert plain.output[0].type == "reasoning" and plain.output[0].summary == []
    assert plain.output[0].encrypted_content is None
    assert rich.output[0].type == "reasoning"
    assert rich.output[0].summary[0].text.startswith("The user said")
    assert rich.output[0].encrypted_content.startswith("gAAAAA")  # type: ignore[union-attr]
    assert rich.usage is not None and rich.usage.output_tokens_details.reasoning_tokens == 16
    assert "response.reasoning_summary_text.delta" in kinds
    assert events[-1]["response"]["usage"] == rich.usage.model_dump(exclude_none=True)
    assert (
        events[-1]["response"]["output"][0]["encrypted_content"] == rich.output[0].encrypted_content
    )


def test_stored_responses_are_retrieved_chained_listed_and_deleted(gpt: openai.OpenAI) -> None:
    first = gpt.responses.create(model=GPT, input="My name is Ada")
    second = gpt.responses.create(model=GPT, input="And yours?", previous_response_id=first.id)
    items = gpt.responses.input_items.list(first.id)

    assert gpt.responses.retrieve(first.id).output_text == first.output_text
    assert second.previous_response_id == first.id
    assert second.usage is not None and first.usage is not None
    assert second.usage.input_tokens > first.usage.input_tokens  # the history is input too
    assert [item.type for item in items.data] == ["message"]
    assert items.data[0].content[0].text == "My name is Ada"  # type: ignore[union-attr]
    gpt.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        gpt.responses.retrieve(first.id)
    with pytest.raises(openai.BadRequestError, match="Previous response"):
        gpt.responses.create(model=GPT, input="again", previous_response_id=first.id)


def test_unstored_responses_cannot_be_retrieved(gpt: openai.OpenAI) -> None:
    response = gpt.responses.create(model=GPT, input="forget me", store=False)
    with pytest.raises(openai.NotFoundError, match="not found"):
        gpt.responses.retrieve(response.id)


def test_only_background_responses_can_be_cancelled(gpt: openai.OpenAI) -> None:
    done = gpt.responses.create(model=GPT, input="quick")
    queued = gpt.responses.create(model=GPT, input="slow job", background=True)
    cancelled = gpt.responses.cancel(queued.id)
    finished = gpt.responses.create(model=GPT, input="later", background=True)

    with pytest.raises(openai.BadRequestError, match="background"):
        gpt.responses.cancel(done.id)
    assert queued.status == "queued"
    assert cancelled.status == gpt.responses.retrieve(queued.id).status == "cancelled"
    assert gpt.responses.retrieve(finished.id).status == "completed"


def test_max_output_tokens_leaves_the_response_incomplete(mock: MockProviderThread) -> None:
    events = sse(mock, {"model": GPT, "input": "a long answer please", "max_output_tokens": 3})
    final = events[-1]

    assert final["type"] == "response.incomplete"
    assert final["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["response"]["usage"]["output_tokens"] == 3


def test_long_prompts_repeated_report_cached_input(gpt: openai.OpenAI) -> None:
    long = "background " * 600
    first = gpt.responses.create(model=GPT, input=long + "question one")
    again = gpt.responses.create(model=GPT, input=long + "question one")

    assert first.usage is not None and again.usage is not None
    assert first.usage.input_tokens_details.cached_tokens == 0
    assert again.usage.input_tokens_details.cached_tokens >= 1024


def test_structured_output_is_schema_valid_json(gpt: openai.OpenAI) -> None:
    response = gpt.responses.create(
        model=GPT,
        input="Where?",
        text={"format": {"type": "json_schema", "name": "place", "schema": SCHEMA}},
    )
    assert orjson.loads(response.output_text) == {"city": "mock"}


def test_faults_answer_in_openai_error_shape(gpt: openai.OpenAI, mock: MockProviderThread) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        gpt.responses.create(model=GPT, input="hi", extra_headers={"x-mock-fault": "429"})
    events = sse(mock, {"model": GPT, "input": "hi [[fault:cut:3]]"})

    assert caught.value.response.headers["retry-after"] == "0"
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
    ]


def test_bad_requests_get_openai_errors(mock: MockProviderThread) -> None:
    auth = {"authorization": "Bearer sk-test"}
    no_input = httpx.post(mock.url + "/v1/responses", json={"model": GPT}, headers=auth)
    no_key = httpx.post(mock.url + "/v1/responses", json={"model": GPT, "input": "hi"})

    assert no_input.status_code == 400
    assert no_input.json()["error"]["message"] == "Missing required parameter: 'input'."
    assert no_key.status_code == 401
