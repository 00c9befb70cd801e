"""count_tokens is free at the provider, yet held to the key's limits and recorded."""

from __future__ import annotations

from decimal import Decimal

import anthropic
import pytest

from gateway import metrics
from identity.models import GatewayKey, Quota
from tests.integration.test_quota import call, worst_case

HELLO = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def client(gateway, token) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=token, max_retries=0)


def key_quota(**limits) -> Quota:
    return Quota.objects.create(key=GatewayKey.objects.get(name="alice-laptop"), **limits)


def counted_upstream(gateway) -> list[dict]:
    return [r for r in gateway.upstream_requests() if r["path"] == "/v1/messages/count_tokens"]


def test_a_count_is_recorded_as_its_own_event_and_costs_nothing(gateway, client):
    counted = client.messages.count_tokens(model="haiku", messages=HELLO)
    (event,) = gateway.events("llm.tokens_counted")
    assert event["counted_input_tokens"] == counted.input_tokens > 0
    assert event["cost_usd"] == 0 and event["status"] == 200 and event["error_class"] is None
    assert event["gateway_key_id"].startswith("gk_") and event["model"] == "claude-haiku-4-5"
    assert event["user"] == "alice" and event["team"] == "eng"
    assert gateway.events("llm.call_completed") == []  # not a call that generates


def refused_counts() -> float:
    sample = metrics.registry.get_sample_value("metis_token_counts_total", {"status": "429"})
    return sample or 0.0


def test_a_spent_budget_refuses_counts_without_asking_the_provider(gateway, client):
    key_quota(period="day", hard_cap_usd=Decimal("0"))
    before = refused_counts()
    for _ in range(5):
        with pytest.raises(anthropic.RateLimitError) as refused:
            client.messages.count_tokens(model="haiku", messages=HELLO)
        assert refused.value.response.headers["x-should-retry"] == "false"
    assert counted_upstream(gateway) == []
    events = gateway.events("llm.tokens_counted")
    assert [e["error_class"] for e in events] == ["QUOTA_EXCEEDED"] * 5
    assert refused_counts() - before == 5  # visible on /metrics too


def test_counts_are_requests_against_the_rate_limit(gateway, client, token):
    key_quota(period="day", requests_per_minute=2)
    client.messages.count_tokens(model="haiku", messages=HELLO)
    assert call(gateway, token).status_code == 200  # the second request this minute
    with pytest.raises(anthropic.RateLimitError) as limited:
        client.messages.count_tokens(model="haiku", messages=HELLO)
    assert 1 <= int(limited.value.response.headers["retry-after"]) <= 60
    assert len(counted_upstream(gateway)) == 1
    assert [e["error_class"] for e in gateway.events("llm.tokens_counted")] == [
        None,
        "RATE_LIMITED",
    ]


def test_a_budget_with_room_lets_counts_through_and_holds_nothing(gateway, client, token):
    key_quota(period="day", hard_cap_usd=worst_case() * Decimal("1.5"))
    for _ in range(3):
        client.messages.count_tokens(model="haiku", messages=HELLO)
    assert call(gateway, token).status_code == 200  # the counts spent none of the room
    assert len(counted_upstream(gateway)) == 3
