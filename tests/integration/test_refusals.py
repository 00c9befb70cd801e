"""A spent budget is a final answer; a rate limit is worth retrying. Measured with the real
SDKs' own retry logic (they retry 429s unless told `x-should-retry: false`)."""

from __future__ import annotations

from decimal import Decimal

import anthropic
import httpx
import openai
import pytest

from identity.models import GatewayKey, Quota
from tests.integration.test_quota import call

HELLO = [{"role": "user", "content": "Say hello"}]


def refusals(gateway, error_class: str) -> int:
    return sum(e["error_class"] == error_class for e in gateway.events("llm.call_completed"))


@pytest.fixture
def spent_key(token) -> str:
    Quota.objects.create(key=GatewayKey.objects.get(name="alice-laptop"), period="day",
                         hard_cap_usd=Decimal("0"))  # fmt: skip
    return token


def test_the_anthropic_sdk_asks_once_when_the_budget_is_spent(gateway, spent_key):
    client = anthropic.Anthropic(base_url=gateway.url, api_key=spent_key, max_retries=2)
    with pytest.raises(anthropic.RateLimitError) as refused:
        client.messages.create(model="haiku", max_tokens=16, messages=HELLO)
    assert refused.value.response.headers["x-should-retry"] == "false"
    assert "daily hard cap of $0.00" in refused.value.message
    assert refusals(gateway, "QUOTA_EXCEEDED") == 1
    assert gateway.upstream_requests() == []


def test_the_openai_sdk_asks_once_and_hears_insufficient_quota(gateway, spent_key):
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=spent_key, max_retries=2)
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="gpt-5-mini", messages=HELLO)
    assert refused.value.code == "insufficient_quota"
    assert refused.value.type == "insufficient_quota"
    assert "hard cap" in refused.value.message
    assert refusals(gateway, "QUOTA_EXCEEDED") == 1


def test_a_rate_limit_stays_retryable_and_says_when(gateway, token):
    Quota.objects.create(key=GatewayKey.objects.get(name="alice-laptop"), period="day",
                         requests_per_minute=1)  # fmt: skip
    assert call(gateway, token).status_code == 200
    limited = call(gateway, token)
    assert limited.status_code == 429
    assert "x-should-retry" not in limited.headers
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    # The SDKs' own verdict on this very response (waiting out the minute would make a slow
    # test): retry it. And the opposite for a spent budget.
    sdk = anthropic.Anthropic(base_url=gateway.url, api_key=token)
    assert sdk._should_retry(httpx.Response(429, headers=limited.headers)) is True
    openai_sdk = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=token)
    assert openai_sdk._should_retry(httpx.Response(429, headers=limited.headers)) is True
