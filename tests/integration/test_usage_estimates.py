"""What the provider bills but never reported is estimated, and only that (gateway.estimates)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import anthropic
import httpx
import openai
import orjson
import pytest

from gateway import estimates, routing
from mock_provider import MockProviderThread
from tests.integration.test_gateway_streams import cancelled_call, eventually

PROMPT = "Write two sentences about the sea."


@pytest.fixture
def slow_streams(gateway, settings) -> Iterator[MockProviderThread]:
    """A second mock, for both shapes, that streams one piece every 0.2 s."""
    with MockProviderThread(token_delay=0.2) as provider:
        settings.METIS_ANTHROPIC_BASE_URL = provider.url
        settings.METIS_OPENAI_BASE_URL = provider.url
        routing.forget_catalog()
        yield provider


def test_a_cancelled_unstreamed_call_records_its_input_estimated(gateway, token):
    # The real SDK gives up after 0.5 s and closes the connection; the provider had the
    # request (and bills its input) but never answered.
    client = anthropic.Anthropic(base_url=gateway.url, api_key=token, max_retries=0, timeout=0.5)
    with pytest.raises(anthropic.APITimeoutError):
        client.messages.create(
            model="haiku",
            max_tokens=64,
            system="You are terse.",
            messages=[{"role": "user", "content": f"{PROMPT} [[fault:slow:3]]"}],
        )
    completed = eventually(lambda: cancelled_call(gateway), within=5)
    (sent,) = gateway.upstream_requests()
    assert completed["stream"] is False
    assert completed["input_tokens"] == estimates.input_tokens(sent["body"]) > 10
    assert completed["output_tokens"] == 0
    assert completed["usage_estimated"] is True
    assert Decimal(str(completed["cost_usd"])) > 0


def test_a_cancelled_openai_stream_records_input_and_output_estimated(gateway, token, slow_streams):
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=token, max_retries=0)
    stream = client.chat.completions.create(
        model="gpt-5-mini", messages=[{"role": "user", "content": PROMPT}], stream=True
    )
    text = ""
    for chunk in stream:
        text += (chunk.choices[0].delta.content or "") if chunk.choices else ""
        if text:
            break
    stream.close()
    completed = eventually(lambda: cancelled_call(gateway), within=5)
    (sent,) = slow_streams.requests
    assert sent["body"]["stream_options"] == {"include_usage": True}  # usage comes last
    assert completed["input_tokens"] == estimates.input_tokens(sent["body"]) > 10
    assert completed["output_tokens"] >= 1
    assert completed["usage_estimated"] is True
    assert Decimal(str(completed["cost_usd"])) > 0


@pytest.mark.parametrize("shape", ["anthropic", "openai"])
def test_a_stream_reporting_zero_output_is_recorded_as_zero(gateway, token, shape):
    content = f"{PROMPT} [[fault:zero-output]]"
    if shape == "anthropic":
        client = anthropic.Anthropic(base_url=gateway.url, api_key=token, max_retries=0)
        with client.messages.stream(
            model="haiku", max_tokens=128, messages=[{"role": "user", "content": content}]
        ) as stream:
            final = stream.get_final_message()
        assert final.content[0].text and final.usage.output_tokens == 0
    else:
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=token, max_retries=0)
        chunks = list(
            client.chat.completions.create(
                model="gpt-5-mini", messages=[{"role": "user", "content": content}], stream=True
            )
        )
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    (completed,) = gateway.events("llm.call_completed")
    assert completed["error_class"] is None
    assert completed["input_tokens"] > 0
    assert completed["output_tokens"] == 0
    assert completed["usage_estimated"] is False


def test_a_cut_stream_keeps_the_input_it_reported(gateway, token):
    # Anthropic reports input at the stream's start: only the output is estimated.
    body = {"model": "haiku", "max_tokens": 64, "stream": True, "messages": [
        {"role": "user", "content": f"{PROMPT} [[fault:cut:5]]"}
    ]}  # fmt: skip
    with httpx.stream(
        "POST", f"{gateway.url}/v1/messages", json=body, headers={"x-api-key": token}, timeout=10
    ) as response:
        lines = list(response.iter_lines())
    start = orjson.loads(next(line[6:] for line in lines if '"message_start"' in line))
    reported = start["message"]["usage"]["input_tokens"]
    (completed,) = gateway.events("llm.call_completed")
    assert completed["error_class"] == "UPSTREAM_STREAM_ERROR"
    assert completed["input_tokens"] == reported > 0
    assert completed["output_tokens"] >= 1 and completed["usage_estimated"] is True


def test_the_input_rule_counts_text_and_leaves_out_media():
    text = {"type": "text", "text": "x" * 400}
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": "A" * 100_000}}  # fmt: skip
    body = {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": [text, image]}]}
    # 400 + "user" + "text" + "image" + "base64" + "image/png" characters, /4; 3 + 3 framing
    assert estimates.input_tokens(body) == -(-(400 + 4 + 4 + 5 + 6 + 9) // 4) + 6
    deep: object = "y" * 40
    for _ in range(5000):  # deeper than Python's recursion limit
        deep = [deep]
    assert estimates.input_tokens({"messages": [{"role": "user", "content": deep}]}) == 10 + 1 + 6
