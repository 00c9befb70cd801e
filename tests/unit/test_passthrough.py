"""Whose provider key is whose, in pass-through mode."""

from __future__ import annotations

from gateway.passthrough import ClientKey, client_keys

ANT = "sk-ant-api03-abc"
PROJ = "sk-proj-abc"


def families(x_api_key: str | None, bearer: str | None) -> list[tuple[str, str]]:
    return [(k.family, k.header) for k in client_keys(x_api_key, bearer)]


def test_an_sk_ant_key_is_anthropics_in_either_header() -> None:
    assert families(ANT, None) == [("anthropic", "x-api-key")]
    assert families(None, ANT) == [("anthropic", "authorization")]


def test_any_other_key_is_for_the_openai_api_in_either_header() -> None:
    assert families(PROJ, None) == [("openai", "x-api-key")]
    assert families(None, "ollama") == [("openai", "authorization")]


def test_two_keys_are_both_kept_and_the_same_key_twice_once() -> None:
    assert families(PROJ, ANT) == [("openai", "x-api-key"), ("anthropic", "authorization")]
    assert families(ANT, ANT) == [("anthropic", "x-api-key")]
    assert families("", " ") == []


def test_a_gateway_token_sent_again_is_never_taken_for_a_provider_key() -> None:
    assert families("gw_" + "x" * 48, ANT) == [("anthropic", "authorization")]


def test_a_client_key_never_shows_in_a_repr() -> None:
    assert ANT not in repr(ClientKey("anthropic", "x-api-key", ANT))
