"""A provider that compresses its responses: the gateway decodes them to read usage, and
what it sends back is consistent (identity bytes, no stale content-encoding)."""

from __future__ import annotations

import anthropic
import httpx
import pytest

from gateway import routing
from mock_provider import MockProviderThread


@pytest.fixture
def gzip_provider(gateway, settings):
    with MockProviderThread(gzip=True) as provider:
        settings.METIS_ANTHROPIC_BASE_URL = provider.url
        routing.forget_catalog()
        yield provider


def test_the_mock_really_compresses(gzip_provider):
    response = httpx.post(
        f"{gzip_provider.url}/v1/messages",
        headers={"x-api-key": "k", "accept-encoding": "gzip"},
        json={"model": "claude-haiku-4-5", "max_tokens": 16, "messages": []},
    )
    assert response.headers["content-encoding"] == "gzip"


def test_a_compressed_json_reply_is_decoded_priced_and_sent_back_plainly(
    gateway, gzip_provider, token
):
    response = httpx.post(
        f"{gateway.url}/v1/messages",
        headers={"x-api-key": token, "accept-encoding": "gzip", "anthropic-version": "2023-06-01"},
        json={"model": "haiku", "max_tokens": 32, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.status_code == 200
    assert "gzip" in gzip_provider.requests[-1]["headers"]["accept-encoding"]  # it came zipped
    assert "content-encoding" not in response.headers
    assert response.json()["usage"]["output_tokens"] > 0
    (completed,) = gateway.events("llm.call_completed")
    assert completed["output_tokens"] == response.json()["usage"]["output_tokens"]
    assert completed["cost_usd"] > 0


def test_a_compressed_stream_is_relayed_and_its_usage_recorded(gateway, gzip_provider, token):
    client = anthropic.Anthropic(base_url=gateway.url, api_key=token, max_retries=0)
    with client.messages.stream(
        model="haiku", max_tokens=32, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        text = stream.get_final_text()
        final = stream.get_final_message()
    assert text
    (completed,) = gateway.events("llm.call_completed")
    assert completed["output_tokens"] == final.usage.output_tokens
