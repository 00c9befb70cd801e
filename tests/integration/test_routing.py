"""Which model serves a call, through the real gateway: the routing chain when `model` is
absent (recorded as `decided_by`), aliases, `provider:model`, versioned ids, pricing of
models the price table does not know, and stored provider credentials."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import anthropic
import httpx
import pytest

from gateway import routing
from gateway.models import ModelAlias, PriceOverride, RoutePattern
from identity.models import ProviderCredential
from tests.factories import make_key, make_user, make_workspace


def routing_yaml(workspace: Path, text: str) -> None:
    (workspace / ".metis").mkdir(exist_ok=True)
    (workspace / ".metis" / "routing.yaml").write_text(text)


def key_for(workspace: Path, **kwargs) -> str:
    _, token = make_key(workspace=make_workspace(path=str(workspace)), **kwargs)
    return token


def post(gateway, token: str, body: dict, **headers: str) -> httpx.Response:
    body = {"max_tokens": 32, "messages": [{"role": "user", "content": "hi"}], **body}
    return httpx.post(
        f"{gateway.url}/v1/messages", json=body, headers={"x-api-key": token, **headers}
    )


def last(gateway, type_: str) -> dict:
    return gateway.events(type_)[-1]


def test_a_routing_rule_matching_the_user_decides_when_model_is_absent(gateway, tmp_path):
    routing_yaml(tmp_path, "rules:\n  - when: {user: 'ci-*'}\n    model: haiku\ndefault: opus\n")
    reply = post(gateway, key_for(tmp_path), {}, **{"x-metis-user": "ci-nightly"})
    assert reply.status_code == 200
    decided = last(gateway, "route.decided")
    assert decided["decided_by"] == "routing_rules"
    assert decided["model"] == "claude-haiku-4-5"
    assert decided["user"] == "ci-nightly"
    assert gateway.upstream_requests()[-1]["body"]["model"] == "claude-haiku-4-5"


def test_the_routing_file_default_decides_when_no_rule_matches(gateway, tmp_path):
    routing_yaml(tmp_path, "rules:\n  - when: {user: 'ci-*'}\n    model: haiku\ndefault: opus\n")
    reply = post(gateway, key_for(tmp_path), {}, **{"x-metis-user": "bob"})
    assert reply.status_code == 200
    decided = last(gateway, "route.decided")
    assert decided["decided_by"] == "routing_rules"
    assert decided["model"] == "claude-opus-4-6"


def test_a_pattern_route_decides_when_the_workspace_has_no_routing_file(gateway, tmp_path):
    RoutePattern.objects.create(field="workspace", pattern=f"{tmp_path}*", model="sonnet")
    routing.forget_catalog()
    reply = post(gateway, key_for(tmp_path), {})
    assert reply.status_code == 200
    decided = last(gateway, "route.decided")
    assert decided["decided_by"] == "pattern_route"
    assert decided["model"] == "claude-sonnet-4-6"


def test_the_workspace_default_decides_when_nothing_else_matches(gateway, tmp_path):
    workspace = make_workspace(path=str(tmp_path))
    workspace.default_model = "anthropic:claude-haiku-4-5"
    workspace.save()
    _, token = make_key(workspace=workspace)
    reply = post(gateway, token, {})
    assert reply.status_code == 200
    decided = last(gateway, "route.decided")
    assert decided["decided_by"] == "workspace_default"
    assert decided["model"] == "claude-haiku-4-5"


def test_a_request_without_model_and_no_route_is_a_400_naming_model(gateway, tmp_path):
    reply = post(gateway, key_for(tmp_path), {})
    assert reply.status_code == 400
    assert reply.json()["type"] == "error"
    assert "model" in reply.json()["error"]["message"]
    assert gateway.events() == []


def test_a_request_with_model_is_decided_by_the_request(gateway, tmp_path):
    routing_yaml(tmp_path, "default: opus\n")
    assert post(gateway, key_for(tmp_path), {"model": "haiku"}).status_code == 200
    decided = last(gateway, "route.decided")
    assert decided["decided_by"] == "request"
    assert decided["model"] == "claude-haiku-4-5"


def test_an_operator_alias_overrides_the_builtin_one(gateway, token):
    ModelAlias.objects.create(alias="haiku", target="anthropic:claude-sonnet-4-6")
    routing.forget_catalog()
    client = anthropic.Anthropic(base_url=gateway.url, api_key=token, max_retries=0)
    client.messages.create(
        model="haiku", max_tokens=16, messages=[{"role": "user", "content": "x"}]
    )
    completed = last(gateway, "llm.call_completed")
    assert completed["model"] == "claude-sonnet-4-6"
    assert completed["requested_model"] == "haiku"


@pytest.mark.parametrize("model", ["anthropic:haiku", "anthropic:claude-haiku-4-5"])
def test_a_provider_prefix_names_the_upstream(gateway, token, model):
    client = anthropic.Anthropic(base_url=gateway.url, api_key=token, max_retries=0)
    client.messages.create(model=model, max_tokens=16, messages=[{"role": "user", "content": "x"}])
    completed = last(gateway, "llm.call_completed")
    assert completed["provider"] == "anthropic"
    assert completed["model"] == "claude-haiku-4-5"
    assert gateway.upstream_requests()[-1]["body"]["model"] == "claude-haiku-4-5"


def test_a_dated_model_id_is_priced_by_prefix_and_allowed_by_its_undated_name(gateway):
    _, token = make_key(allowed_models=["claude-haiku-4-5"])
    client = anthropic.Anthropic(base_url=gateway.url, api_key=token, max_retries=0)
    client.messages.create(
        model="claude-haiku-4-5-20251001",
        max_tokens=16,
        messages=[{"role": "user", "content": "x"}],
    )
    completed = last(gateway, "llm.call_completed")
    assert completed["model"] == "claude-haiku-4-5-20251001"
    assert completed["cost_usd"] is not None
    assert Decimal(str(completed["cost_usd"])) > 0


def test_the_allowed_list_still_refuses_other_models(gateway):
    _, token = make_key(allowed_models=["claude-haiku-4-5"])
    reply = post(gateway, token, {"model": "claude-sonnet-4-6"})
    assert reply.status_code == 403
    assert reply.headers["x-should-retry"] == "false"


def test_a_routable_model_without_a_price_records_a_null_cost_not_zero(gateway, token):
    reply = post(gateway, token, {"model": "claude-unreleased-9"})
    assert reply.status_code == 200
    completed = last(gateway, "llm.call_completed")
    assert completed["model"] == "claude-unreleased-9"
    assert completed["output_tokens"] > 0
    assert completed["cost_usd"] is None
    assert completed["price_source"] is None
    assert last(gateway, "turn.completed")["cost_usd"] is None


def test_an_operator_price_override_prices_an_unknown_model(gateway, token):
    PriceOverride.objects.create(
        model="claude-unreleased-9", input_per_mtok=Decimal("3"), output_per_mtok=Decimal("15")
    )
    routing.forget_catalog()
    reply = post(gateway, token, {"model": "claude-unreleased-9"})
    assert reply.status_code == 200
    completed = last(gateway, "llm.call_completed")
    expected = (
        completed["input_tokens"] * Decimal(3) + completed["output_tokens"] * Decimal(15)
    ).scaleb(-6)
    assert Decimal(str(completed["cost_usd"])) == expected
    assert completed["price_source"] == "override"


def test_a_stored_provider_credential_serves_its_prefix_with_its_own_key(gateway):
    credential = ProviderCredential(name="work-anthropic", provider="anthropic",
                                    base_url=gateway.mock.url)  # fmt: skip
    credential.set_api_key("sk-stored")
    credential.save()
    routing.forget_catalog()
    _, token = make_key(user=make_user(username="carol"))
    client = anthropic.Anthropic(base_url=gateway.url, api_key=token, max_retries=0)
    client.messages.create(
        model="work-anthropic:claude-haiku-4-5",
        max_tokens=16,
        messages=[{"role": "user", "content": "x"}],
    )
    sent = gateway.upstream_requests()[-1]
    assert sent["headers"]["x-api-key"] == "sk-stored"
    assert sent["body"]["model"] == "claude-haiku-4-5"
    completed = last(gateway, "llm.call_completed")
    assert completed["provider"] == "work-anthropic"
    assert completed["model"] == "claude-haiku-4-5"
    assert completed["cost_usd"] is not None
    assert Decimal(str(completed["cost_usd"])) > 0
