"""Streams through the gateway: the same money as unstreamed, disconnects, cuts, the seeds' SQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest
from django.db import connection

from gateway import routing, upstream
from gateway.handler import GatewayASGIHandler
from mock_provider import MockProviderThread

USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_creation_1h_input_tokens",
    "cache_read_input_tokens",
    "reasoning_tokens",
    "usage_estimated",
    "cost_usd",
    "price_source",
)
PROMPT = [{"role": "user", "content": "Write two sentences about the sea."}]


def eventually(check: Callable[[], Any], *, within: float = 2.0) -> Any:
    """Poll `check` until it returns something truthy; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while not (result := check()):
        assert time.monotonic() < deadline, f"not true within {within} s: {check.__doc__}"
        time.sleep(0.02)
    return result


def usage_of(event: dict) -> dict:
    return {name: event[name] for name in USAGE_FIELDS}


def test_an_anthropic_completion_costs_the_same_streamed_and_not(gateway, token):
    client = anthropic.Anthropic(base_url=gateway.url, api_key=token, max_retries=0)
    whole = client.messages.create(model="haiku", max_tokens=128, messages=PROMPT)
    with client.messages.stream(model="haiku", max_tokens=128, messages=PROMPT) as stream:
        streamed = stream.get_final_message()
    assert streamed.content[0].text == whole.content[0].text
    plain, relayed = gateway.events("llm.call_completed")
    assert (plain["stream"], relayed["stream"]) == (False, True)
    assert usage_of(relayed) == usage_of(plain)
    assert plain["input_tokens"] > 0 and plain["output_tokens"] > 0
    assert Decimal(str(plain["cost_usd"])) > 0


def test_an_openai_completion_costs_the_same_streamed_and_not(gateway, token):
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=token, max_retries=0)
    whole = client.chat.completions.create(model="gpt-5-mini", messages=PROMPT)
    chunks = list(client.chat.completions.create(model="gpt-5-mini", messages=PROMPT, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    plain, relayed = gateway.events("llm.call_completed")
    assert (plain["stream"], relayed["stream"]) == (False, True)
    assert usage_of(relayed) == usage_of(plain)
    assert plain["input_tokens"] == whole.usage.prompt_tokens
    assert Decimal(str(plain["cost_usd"])) > 0


def read_events_then_leave(gateway, token: str, content: str, *, until: str) -> list[str]:
    """Open a raw stream to /v1/messages, read SSE lines up to the first `until` event,
    then close the connection the way a client that gives up does."""
    body = {"model": "haiku", "max_tokens": 256, "stream": True, "messages": [
        {"role": "user", "content": content}
    ]}  # fmt: skip
    seen: list[str] = []
    with (
        httpx.Client(timeout=10) as client,
        client.stream(
            "POST", f"{gateway.url}/v1/messages", json=body, headers={"x-api-key": token}
        ) as response,
    ):
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("event: "):
                seen.append(line[7:])
                if line == f"event: {until}":
                    break
    return seen


def cancelled_call(gateway) -> dict | None:
    """the gateway recorded the call as CANCELLED"""
    done = gateway.events("llm.call_completed")
    return done[0] if done and done[0]["error_class"] == "CANCELLED" else None


def upstream_disconnected(gateway) -> dict | None:
    """the provider saw the connection closed"""
    sent = gateway.upstream_requests()
    return sent[0] if sent and sent[0]["disconnected"] else None


def test_a_client_leaving_a_stalled_stream_cancels_upstream_and_records_input(gateway, token):
    seen = read_events_then_leave(gateway, token, "Say hello [[fault:hang]]", until="ping")
    assert seen == ["message_start", "content_block_start", "ping"]
    left = time.monotonic()
    eventually(lambda: upstream_disconnected(gateway))
    assert time.monotonic() - left < 2.0
    completed = eventually(lambda: cancelled_call(gateway))
    assert completed["stream"] is True
    assert completed["input_tokens"] > 0  # from message_start
    assert completed["model"] == "claude-haiku-4-5"
    assert Decimal(str(completed["cost_usd"])) > 0  # a cancelled call is still billed
    assert [e["type"] for e in gateway.events()] == [
        "route.decided",
        "llm.call_completed",
        "turn.completed",
    ]


def test_a_stream_whose_client_left_before_its_first_byte_was_asked_for_is_recorded(gateway, token):
    """The status line waits on a stalled socket (uvicorn's flow control, when the client
    reads nothing) and the client leaves: the relay never starts, and the call is still
    recorded, as cancelled with its input estimated, and its upstream connection closed."""
    hanging = [{"role": "user", "content": "Say hello [[fault:hang]]"}]  # upstream stays open
    body = orjson.dumps({"model": "claude-haiku-4-5", "max_tokens": 64, "stream": True,
                         "messages": hanging})  # fmt: skip
    scope = {
        "type": "http", "method": "POST", "path": "/v1/messages", "raw_path": b"/v1/messages",
        "query_string": b"", "root_path": "", "scheme": "http", "http_version": "1.1",
        "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 50000),
        "headers": [(b"x-api-key", token.encode()), (b"anthropic-version", b"2023-06-01"),
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
    }  # fmt: skip
    sent: list[str] = []

    async def client() -> None:
        left = asyncio.Event()
        request = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict:
            if request:
                return request.pop()
            await left.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            sent.append(message["type"])
            if message["type"] == "http.response.start":
                left.set()  # the client goes while the status line cannot be written
                await asyncio.Event().wait()

        await GatewayASGIHandler()(scope, receive, send)
        await upstream.close_sessions()

    # In a thread of its own, as the server runs it: no database connection of the test's.
    with ThreadPoolExecutor(1) as server:
        server.submit(asyncio.run, client()).result(timeout=10)
    assert sent == ["http.response.start"]
    completed = eventually(lambda: cancelled_call(gateway))
    assert completed["stream"] is True
    assert completed["usage_estimated"] is True
    assert completed["input_tokens"] > 0
    assert [e["type"] for e in gateway.events()] == [
        "route.decided",
        "llm.call_completed",
        "turn.completed",
    ]
    assert eventually(lambda: upstream_disconnected(gateway))


@pytest.mark.parametrize(
    ("path", "body", "last"),
    [
        ("/v1/chat/completions", {"model": "gpt-5-mini", "stream": True}, "data: [DONE]"),
        ("/v1/messages", {"model": "claude-haiku-4-5", "max_tokens": 64, "stream": True},
         "event: message_stop"),
        ("/v1/responses", {"model": "gpt-5-mini", "stream": True}, "event: response.completed"),
    ],
)  # fmt: skip
def test_a_client_that_hangs_up_once_the_stream_has_ended_made_a_complete_call(
    gateway, token, path, body, last
):
    """The openai SDK closes its connection on `[DONE]`; the provider may end its body a
    moment later. The call was whole: it is not recorded as cancelled."""
    prompt = "Say hello [[fault:linger:1]]"  # the provider ends its body 1 s after its last event
    if path == "/v1/responses":
        body = {**body, "input": prompt}
    else:
        body = {**body, "messages": [{"role": "user", "content": prompt}]}
    headers = {"authorization": f"Bearer {token}", "anthropic-version": "2023-06-01"}
    with httpx.stream("POST", f"{gateway.url}{path}", json=body, headers=headers) as answer:
        for line in answer.iter_lines():
            if line.startswith(last):
                break  # and hang up, as the SDK does
    completed = eventually(lambda: gateway.events("llm.call_completed"), within=5)[0]
    assert completed["error_class"] is None
    assert completed["status"] == 200
    assert completed["output_tokens"] > 0
    assert completed["usage_estimated"] is False


@pytest.fixture
def slow_provider(gateway, settings) -> Iterator[MockProviderThread]:
    """A second mock that streams one piece every 0.2 s, in front of which the gateway sits."""
    with MockProviderThread(token_delay=0.2) as provider:
        settings.METIS_ANTHROPIC_BASE_URL = provider.url
        routing.forget_catalog()
        yield provider


def test_a_client_leaving_mid_text_gets_its_output_estimated(gateway, token, slow_provider):
    seen = read_events_then_leave(gateway, token, PROMPT[0]["content"], until="content_block_delta")
    assert "message_delta" not in seen
    left = time.monotonic()
    eventually(lambda: slow_provider.requests and slow_provider.requests[0]["disconnected"])
    assert time.monotonic() - left < 2.0
    completed = eventually(lambda: cancelled_call(gateway))
    assert completed["input_tokens"] > 0
    assert completed["output_tokens"] >= 1
    assert completed["usage_estimated"] is True
    assert Decimal(str(completed["cost_usd"])) > 0


def test_a_stream_cut_by_the_provider_ends_in_an_error_event(gateway, token):
    body = {"model": "haiku", "max_tokens": 64, "stream": True, "messages": [
        {"role": "user", "content": "Say hello [[fault:cut:3]]"}
    ]}  # fmt: skip
    with httpx.stream(
        "POST", f"{gateway.url}/v1/messages", json=body, headers={"x-api-key": token}, timeout=10
    ) as response:
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line]
    events = [line[7:] for line in lines if line.startswith("event: ")]
    assert events == ["message_start", "content_block_start", "ping", "error"]
    assert '"type":"api_error"' in lines[-1]
    (completed,) = gateway.events("llm.call_completed")
    assert completed["error_class"] == "UPSTREAM_STREAM_ERROR"
    assert completed["input_tokens"] > 0


def test_the_anthropic_sdk_raises_on_a_cut_stream(gateway, token):
    client = anthropic.Anthropic(base_url=gateway.url, api_key=token, max_retries=0)
    cut = [{"role": "user", "content": "Write two sentences about the sea. [[fault:cut:5]]"}]
    with (
        pytest.raises(anthropic.APIStatusError),
        client.messages.stream(model="haiku", max_tokens=64, messages=cut) as stream,
    ):
        stream.get_final_message()
    (completed,) = gateway.events("llm.call_completed")
    assert completed["error_class"] == "UPSTREAM_STREAM_ERROR"


def test_the_openai_sdk_raises_on_a_cut_stream(gateway, token):
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=token, max_retries=0)
    cut = [{"role": "user", "content": "Write two sentences about the sea. [[fault:cut:3]]"}]
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(model="gpt-5-mini", messages=cut, stream=True))
    (completed,) = gateway.events("llm.call_completed")
    assert completed["error_class"] == "UPSTREAM_STREAM_ERROR"
    assert completed["usage_estimated"] is True and completed["output_tokens"] >= 1


def test_the_seeds_sql_returns_the_documented_rows(gateway, token):
    if connection.vendor != "sqlite":
        pytest.skip(
            f"the seeds' queries are sqlite3 queries (json_extract); this database is "
            f"{connection.vendor}"
        )
    client = anthropic.Anthropic(base_url=gateway.url, api_key=token, max_retries=0)
    client.messages.create(model="haiku", max_tokens=64, messages=PROMPT)
    (completed,) = gateway.events("llm.call_completed")  # flushes the writer
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT json_extract(payload_json, '$.gateway_key_id'),"
            " json_extract(payload_json, '$.model'),"
            " json_extract(payload_json, '$.cost_usd')"
            " FROM events WHERE type = 'llm.call_completed'"
            " ORDER BY timestamp_us DESC LIMIT 1;"
        )
        ((key_id, model, cost),) = cursor.fetchall()
        cursor.execute(
            "SELECT type, json_extract(payload_json, '$.model'),"
            " json_extract(payload_json, '$.cost_usd')"
            " FROM events"
            " WHERE type IN ('route.decided', 'llm.call_completed', 'turn.completed')"
            " ORDER BY timestamp_us DESC LIMIT 5;"
        )
        rows = cursor.fetchall()
        cursor.execute("SELECT id FROM events ORDER BY timestamp_us")
        ids = [row[0] for row in cursor.fetchall()]
    assert key_id == completed["gateway_key_id"] and key_id.startswith("gk_")
    assert model == "claude-haiku-4-5"
    assert 0 < cost < 0.01  # a sub-cent haiku call
    assert [row[0] for row in reversed(rows)] == [
        "route.decided",
        "llm.call_completed",
        "turn.completed",
    ]
    assert {row[1] for row in rows} == {"claude-haiku-4-5"}
    assert rows[0][2] == rows[1][2] == cost and rows[2][2] is None
    assert ids == sorted(ids)  # timestamp order is ULID order
