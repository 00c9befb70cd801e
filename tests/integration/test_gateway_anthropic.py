"""The real anthropic SDK against the gateway, in front of the mock provider over loopback."""

from __future__ import annotations

from decimal import Decimal

import anthropic
import pytest

from tests.integration.payloads import ANTHROPIC_WEATHER_TOOL as WEATHER_TOOL
from tests.integration.payloads import HELLO


@pytest.fixture
def client(gateway, token) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=token, max_retries=0)


def the_one_call(gateway) -> dict:
    (completed,) = gateway.events("llm.call_completed")
    return completed


def test_a_message_is_answered_and_its_usage_recorded(gateway, client):
    message = client.messages.create(model="haiku", max_tokens=64, messages=HELLO)
    assert message.content[0].type == "text" and message.content[0].text
    completed = the_one_call(gateway)
    assert completed["input_tokens"] == message.usage.input_tokens
    assert completed["output_tokens"] == message.usage.output_tokens
    assert completed["stream"] is False
    assert completed["status"] == 200 and completed["error_class"] is None


def test_a_streamed_message_relays_text_and_final_usage(gateway, client):
    with client.messages.stream(model="haiku", max_tokens=64, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and text == final.content[0].text
    assert final.usage.output_tokens > 0
    completed = the_one_call(gateway)
    assert completed["stream"] is True
    assert completed["input_tokens"] == final.usage.input_tokens
    assert completed["output_tokens"] == final.usage.output_tokens
    assert completed["ttft_ms"] is not None


def test_a_call_records_three_events_in_ulid_order_with_its_attribution(gateway, client, token):
    client.messages.create(model="haiku", max_tokens=64, messages=HELLO)
    events = gateway.events()
    assert [e["type"] for e in events] == ["route.decided", "llm.call_completed", "turn.completed"]
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    assert len({e["request_id"] for e in events}) == 1
    for event in events:
        assert event["gateway_key_id"].startswith("gk_")
        assert event["user"] == "alice"
        assert event["team"] == "eng"
        assert event["workspace"] == "/srv/buyer-project"
        assert event["inbound_shape"] == "anthropic"
        assert event["provider"] == "anthropic"
        assert event["model"] == "claude-haiku-4-5"
        assert event["requested_model"] == "haiku"
    decided, completed, turn = events
    assert decided["decided_by"] == "request"
    assert Decimal(str(completed["cost_usd"])) > 0
    assert completed["price_source"]
    assert turn["cost_usd"] == completed["cost_usd"]


def test_a_tool_use_round_trip_ends_in_text(gateway, client):
    asked = [{"role": "user", "content": "What is the weather in Paris? [[tool]]"}]
    first = client.messages.create(
        model="haiku", max_tokens=256, tools=[WEATHER_TOOL], messages=asked
    )
    assert first.stop_reason == "tool_use"
    (tool_use,) = [block for block in first.content if block.type == "tool_use"]
    assert tool_use.name == "get_weather" and "city" in tool_use.input
    answered = [
        *asked,
        {"role": "assistant", "content": [block.model_dump() for block in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "Sunny"}],
        },
    ]
    final = client.messages.create(
        model="haiku", max_tokens=256, tools=[WEATHER_TOOL], messages=answered
    )
    assert final.stop_reason == "end_turn"
    assert any(block.type == "text" and block.text for block in final.content)
    assert len(gateway.events("llm.call_completed")) == 2
    sent = [r for r in gateway.upstream_requests() if r["path"] == "/v1/messages"]
    assert sent[-1]["body"]["messages"][-1]["content"][0]["type"] == "tool_result"


def test_count_tokens_is_forwarded_and_not_billed(gateway, client):
    counted = client.messages.count_tokens(model="haiku", messages=HELLO)
    assert counted.input_tokens > 0
    (sent,) = gateway.upstream_requests()
    assert sent["path"] == "/v1/messages/count_tokens"
    assert sent["body"]["model"] == "claude-haiku-4-5"
    assert gateway.events("llm.call_completed") == []


def test_beta_count_tokens_keeps_the_beta_query(gateway, client):
    # Claude Code calls /v1/messages/count_tokens?beta=true; this SDK's beta method omits it.
    counted = client.beta.messages.count_tokens(
        model="haiku", messages=HELLO, extra_query={"beta": "true"}
    )
    assert counted.input_tokens > 0
    (sent,) = gateway.upstream_requests()
    assert sent["path"] == "/v1/messages/count_tokens" and sent["query"] == "beta=true"


def test_models_list_answers_in_the_anthropic_shape(gateway, client):
    page = client.models.list()
    ids = [model.id for model in page.data]
    assert "haiku" in ids
    assert all(model.type == "model" for model in page.data)


def test_beta_messages_pass_the_query_and_beta_headers_through(gateway, client):
    message = client.beta.messages.create(
        model="haiku",
        max_tokens=64,
        messages=HELLO,
        betas=["context-management-2025-06-27", "interleaved-thinking-2025-05-14"],
        extra_query={"beta": "true"},  # what Claude Code sends; this SDK version does not
    )
    assert message.content[0].text
    (sent,) = gateway.upstream_requests()
    assert sent["path"] == "/v1/messages" and sent["query"] == "beta=true"
    assert sent["headers"]["anthropic-beta"] == (
        "context-management-2025-06-27,interleaved-thinking-2025-05-14"
    )
    assert the_one_call(gateway)["model"] == "claude-haiku-4-5"


def test_a_bearer_token_authenticates_and_is_not_forwarded(gateway, token):
    client = anthropic.Anthropic(
        base_url=gateway.url, api_key=None, auth_token=token, max_retries=0
    )
    message = client.messages.create(model="haiku", max_tokens=64, messages=HELLO)
    assert message.content[0].text
    (sent,) = gateway.upstream_requests()
    assert "authorization" not in sent["headers"]
    assert sent["headers"]["x-api-key"] == "sk-ant-stored-credential"
    assert token not in str(sent)


def test_the_gateway_key_is_swapped_for_the_stored_credential(gateway, client, token):
    client.messages.create(
        model="haiku",
        max_tokens=64,
        messages=HELLO,
        extra_headers={"anthropic-version": "2025-09-01"},
    )
    (sent,) = gateway.upstream_requests()
    assert sent["headers"]["anthropic-version"] == "2025-09-01"
    assert sent["headers"]["x-api-key"] == "sk-ant-stored-credential"
    assert token not in str(sent)


def test_the_providers_request_id_and_the_cost_headers_come_back(gateway, client):
    raw = client.messages.with_raw_response.create(model="haiku", max_tokens=64, messages=HELLO)
    message = raw.parse()
    assert message.content[0].text
    completed = the_one_call(gateway)
    assert raw.headers["request-id"] == completed["upstream_request_id"]
    assert raw.headers["request-id"].startswith("req_")
    assert Decimal(raw.headers["x-metis-cost-usd"]) == Decimal(str(completed["cost_usd"]))
    assert float(raw.headers["x-metis-overhead-ms"]) >= 0
    assert raw.headers["x-metis-request-id"] == completed["request_id"]


def test_x_metis_user_labels_the_calls_user(gateway, client):
    client.messages.create(
        model="haiku", max_tokens=64, messages=HELLO, extra_headers={"x-metis-user": "bob"}
    )
    assert {e["user"] for e in gateway.events()} == {"bob"}
    (sent,) = gateway.upstream_requests()
    assert "x-metis-user" not in sent["headers"]
