"""POST /v1/embeddings through the gateway, with the real openai SDK: authenticated,
priced by input tokens, held to budgets and rate limits, recorded like any call."""

from __future__ import annotations

from decimal import Decimal

import httpx
import openai
import pytest

from gateway.models import PriceOverride
from identity.models import Quota, Team
from tests.factories import make_key
from tests.integration.payloads import HELLO

MODEL = "text-embedding-3-small"


@pytest.fixture
def client(gateway, token) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=token, max_retries=0)


def the_one_call(gateway) -> dict:
    (completed,) = gateway.events("llm.call_completed")
    return completed


def test_an_embedding_is_answered_priced_and_recorded(gateway, client):
    raw = client.embeddings.with_raw_response.create(model=MODEL, input="The cat sat on the mat")
    answer = raw.parse()

    assert len(answer.data) == 1 and len(answer.data[0].embedding) == 1536
    assert answer.usage.prompt_tokens > 0
    completed = the_one_call(gateway)
    assert completed["operation"] == "embeddings"
    assert completed["inbound_shape"] == "openai"
    assert (completed["provider"], completed["model"]) == ("openai", MODEL)
    assert completed["input_tokens"] == answer.usage.prompt_tokens
    assert completed["output_tokens"] == 0
    expected = (completed["input_tokens"] * Decimal("0.02")).scaleb(-6)
    assert Decimal(str(completed["cost_usd"])) == expected > 0
    assert Decimal(raw.headers["x-metis-cost-usd"]) == expected
    (sent,) = gateway.upstream_requests()
    assert sent["path"] == "/v1/embeddings"
    assert sent["headers"]["authorization"] == "Bearer sk-openai-stored-credential"
    assert sent["body"]["encoding_format"] == "base64"  # the SDK's default, passed on


def test_a_batch_with_dimensions_and_floats_passes_through(gateway, client):
    answer = client.embeddings.create(
        model=MODEL, input=["one", "two", "three"], dimensions=256, encoding_format="float"
    )

    assert [d.index for d in answer.data] == [0, 1, 2]
    assert {len(d.embedding) for d in answer.data} == {256}
    assert answer.data[0].embedding != answer.data[1].embedding
    again = client.embeddings.create(model=MODEL, input="one", dimensions=256)
    assert again.data[0].embedding == pytest.approx(answer.data[0].embedding, abs=1e-6)


def test_chat_calls_are_recorded_as_chat(gateway, client):
    client.chat.completions.create(model="gpt-5-mini", messages=HELLO)

    assert the_one_call(gateway)["operation"] == "chat"


def test_a_claude_model_gets_a_clear_400(gateway, client):
    with pytest.raises(openai.BadRequestError) as refused:
        client.embeddings.create(model="haiku", input="x")

    assert "no embeddings API" in refused.value.body["message"]
    assert refused.value.body["param"] == "model"
    assert gateway.upstream_requests() == []


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"input": "x"}, "model is required"),
        ({"model": MODEL}, "input is required"),
        ({"model": MODEL, "input": []}, "input is required"),
        ([MODEL], "must be a JSON object"),
    ],
)
def test_bad_bodies_get_a_400_in_the_openai_shape(gateway, token, body, says):
    response = httpx.post(f"{gateway.url}/v1/embeddings", json=body,
                          headers={"authorization": f"Bearer {token}"})  # fmt: skip

    assert response.status_code == 400
    assert says in response.json()["error"]["message"]
    assert gateway.upstream_requests() == []


def test_an_unknown_token_gets_401_in_the_openai_shape(gateway):
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="gw_nope", max_retries=0)

    with pytest.raises(openai.AuthenticationError):
        client.embeddings.create(model=MODEL, input="x")


def test_a_key_limited_to_chat_models_may_not_embed(gateway):
    _, limited = make_key(allowed_models=["gpt-5-mini"])
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=limited, max_retries=0)

    with pytest.raises(openai.PermissionDeniedError):
        client.embeddings.create(model=MODEL, input="x")


@pytest.fixture
def pricey(transactional_db) -> Decimal:
    """$100 per million input tokens, so caps are above the admin's $0.0001 step."""
    PriceOverride.objects.create(model=MODEL, input_per_mtok=Decimal(100),
                                 output_per_mtok=Decimal(0))  # fmt: skip
    return Decimal(100).scaleb(-6)


def test_a_hard_cap_refuses_an_embedding_it_cannot_afford(gateway, client, pricey):
    # The reservation is every body byte as a token: over 40 bytes here, $0.004 and more.
    Quota.objects.create(team=Team.objects.get(name="eng"), period="day",
                         hard_cap_usd=Decimal("0.004"))  # fmt: skip

    with pytest.raises(openai.RateLimitError) as refused:
        client.embeddings.create(model=MODEL, input="x")

    assert "hard cap" in refused.value.body["message"]
    assert refused.value.response.headers["x-should-retry"] == "false"
    completed = the_one_call(gateway)
    assert (completed["status"], completed["error_class"]) == (429, "QUOTA_EXCEEDED")
    assert completed["operation"] == "embeddings"
    assert gateway.upstream_requests() == []


def test_embeddings_spend_counts_against_the_budget(gateway, client, pricey):
    cap = Decimal("0.05")
    Quota.objects.create(team=Team.objects.get(name="eng"), period="day", hard_cap_usd=cap)

    with pytest.raises(openai.RateLimitError):
        for _ in range(100):
            client.embeddings.create(model=MODEL, input="a " * 40)

    events = gateway.events("llm.call_completed")
    spent = sum(Decimal(str(e["cost_usd"])) for e in events)
    assert len(events) > 2 and events[-1]["status"] == 429
    assert Decimal(str(events[0]["cost_usd"])) == events[0]["input_tokens"] * pricey
    assert 0 < spent <= cap


def test_a_rate_limit_holds_embeddings_too(gateway, client):
    Quota.objects.create(team=Team.objects.get(name="eng"), period="day", requests_per_minute=1)
    client.embeddings.create(model=MODEL, input="x")

    with pytest.raises(openai.RateLimitError) as limited:
        client.embeddings.create(model=MODEL, input="x")

    assert "1 requests" in limited.value.body["message"]
    assert int(limited.value.response.headers["retry-after"]) > 0
    assert len(gateway.upstream_requests()) == 1


def test_pass_through_mode_sends_the_clients_openai_key(gateway, token):
    own_key = "sk-proj-client-own-embedding-key"
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=own_key, max_retries=0,
                           default_headers={"x-metis-token": token})  # fmt: skip

    client.embeddings.create(model=MODEL, input="x")

    (sent,) = gateway.upstream_requests()
    assert sent["headers"]["authorization"] == f"Bearer {own_key}"
