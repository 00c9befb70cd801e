"""GET /v1/models lists what the key can call, in the caller's shape: its aliases and the
chat models of the providers that have credentials, or exactly the key's own model list."""

from __future__ import annotations

import anthropic
import openai
import pytest

from gateway import routing
from gateway.models import ModelAlias
from identity.models import ProviderCredential
from tests.factories import make_key

NOT_SERVED = [
    "gpt-4o:extended",  # a price variant, not a model id
    "gpt-4o-mini-2024-07-18.ft-",  # fine-tune stubs
    "ft:gpt-4o",
    "gpt-oss-120b",  # open weights; OpenAI's API does not host it
    "text-embedding-3-small",  # not a chat model
    "gpt-image-1",
    "gpt-4o-realtime-preview",
    "gpt-3.5-turbo-instruct",
]


def listed(gateway, token: str, **headers: str) -> list[str]:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=token, max_retries=0,
                           default_headers=headers)  # fmt: skip
    return [model.id for model in client.models.list().data]


def test_the_aliases_and_the_chat_models_of_both_providers_are_listed(gateway, token):
    ids = listed(gateway, token)

    assert ids[:3] == ["haiku", "sonnet", "opus"]
    assert {"claude-haiku-4-5", "claude-sonnet-4-6", "gpt-5-mini", "gpt-4o", "o3"} <= set(ids)
    assert not set(NOT_SERVED) & set(ids)
    assert len(ids) == len(set(ids))


def test_the_anthropic_sdk_gets_the_same_list_in_its_shape(gateway, token):
    client = anthropic.Anthropic(base_url=gateway.url, api_key=token, max_retries=0)

    page = client.models.list()

    assert [m.id for m in page.data] == listed(gateway, token)
    assert all(m.type == "model" for m in page.data)


def test_a_provider_without_credentials_lists_nothing(gateway, token, settings):
    settings.METIS_OPENAI_API_KEY = ""
    routing.forget_catalog()

    ids = listed(gateway, token)

    assert "claude-haiku-4-5" in ids and "haiku" in ids
    assert not [i for i in ids if i.startswith(("gpt-", "o1", "o3", "o4", "chatgpt-"))]


def test_stored_credentials_and_aliases_to_compatible_servers_are_listed(gateway, token):
    stored = [("work-anthropic", "anthropic", ""), ("ollama", "openai-compatible", "http://x")]
    for name, provider, base_url in stored:
        credential = ProviderCredential(name=name, provider=provider, base_url=base_url)
        credential.set_api_key("sk-stored-key-0123")
        credential.save()
    ModelAlias.objects.create(alias="llama", target="ollama:llama3")
    ModelAlias.objects.create(alias="nowhere", target="nosuch:model")
    routing.forget_catalog()

    ids = listed(gateway, token)

    assert {"llama", "work-anthropic:claude-haiku-4-5", "claude-haiku-4-5"} <= set(ids)
    assert "nowhere" not in ids
    assert "work-anthropic:gpt-5-mini" not in ids


def test_a_key_limited_to_models_lists_exactly_those(gateway):
    _, limited = make_key(allowed_models=["haiku", "gpt-5-mini", "claude-sonnet-4-6"])

    assert listed(gateway, limited) == ["haiku", "gpt-5-mini", "claude-sonnet-4-6"]


def test_a_model_not_listed_cannot_be_retrieved(gateway, token):
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=token, max_retries=0)

    assert client.models.retrieve("gpt-5-mini").id == "gpt-5-mini"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o:extended")


def test_pass_through_mode_lists_the_models_of_the_providers_whose_keys_came(gateway, token):
    ids = listed(gateway, "sk-ant-api03-own-key", **{"x-metis-token": token})

    assert {"haiku", "claude-haiku-4-5"} <= set(ids)
    assert "gpt-5-mini" not in ids
