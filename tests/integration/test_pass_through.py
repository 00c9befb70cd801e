"""Pass-through mode: a provider key the client sent goes to that provider and no other.

The client's own keys come in x-api-key and/or Authorization: Bearer, the gw_ token in
x-metis-token. A key starting sk-ant- is Anthropic's, any other is for the OpenAI API
(gateway/passthrough.py): the header cannot say, since the anthropic SDK sends its
api_key as a bearer token.
"""

from __future__ import annotations

import json
import uuid

import anthropic
import openai
import pytest

from tests.integration.payloads import HELLO

ASK = {"max_tokens": 64, "messages": HELLO}


def own(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex}"


def everything_sent(gateway) -> str:
    """Each request the provider received, headers and body, as one text to search."""
    return json.dumps(gateway.upstream_requests())


def anthropic_client(gateway, token: str, api_key: str, **headers: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=api_key, max_retries=0,
                               default_headers={"x-metis-token": token, **headers})  # fmt: skip


def openai_client(gateway, token: str, api_key: str, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=api_key, max_retries=0,
                         default_headers={"x-metis-token": token, **headers})  # fmt: skip


def test_an_anthropic_key_is_never_sent_to_openai(gateway, token):
    ant_key = own("sk-ant-api03-")
    client = anthropic_client(gateway, token, ant_key)

    with pytest.raises(anthropic.BadRequestError) as refused:
        client.messages.create(model="gpt-5-mini", **ASK)

    message = refused.value.body["error"]["message"]
    assert "'gpt-5-mini' is served by openai" in message
    assert "you sent an Anthropic key (in authorization)" in message
    assert "add your openai key in x-api-key" in message
    assert ant_key not in message
    assert gateway.upstream_requests() == []


def test_a_cross_shape_call_uses_the_matching_key_when_the_client_sent_both(gateway, token):
    ant_key, openai_key = own("sk-ant-api03-"), own("sk-proj-")
    client = anthropic_client(gateway, token, ant_key, **{"x-api-key": openai_key})

    message = client.messages.create(model="gpt-5-mini", **ASK)
    with client.messages.stream(model="gpt-5-mini", **ASK) as stream:
        assert "".join(stream.text_stream)
    same_shape = client.messages.create(model="haiku", **ASK)

    assert message.content[0].text and same_shape.content[0].text
    to_openai, streamed, to_anthropic = gateway.upstream_requests()
    for sent in (to_openai, streamed):
        assert sent["path"] == "/v1/chat/completions"
        assert sent["headers"]["authorization"] == f"Bearer {openai_key}"
        assert ant_key not in json.dumps(sent)
    assert to_anthropic["path"] == "/v1/messages"
    assert to_anthropic["headers"]["x-api-key"] == ant_key
    assert openai_key not in json.dumps(to_anthropic)


def test_an_openai_key_is_never_sent_to_anthropic(gateway, token):
    openai_key = own("sk-proj-")
    client = openai_client(gateway, token, openai_key)

    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="haiku", messages=HELLO)

    error = refused.value.body
    assert "'claude-haiku-4-5' is served by anthropic" in error["message"]
    assert "you sent an OpenAI key (in authorization)" in error["message"]
    assert "add your Anthropic key (sk-ant-…) in x-api-key" in error["message"]
    assert error["param"] == "model"
    assert gateway.upstream_requests() == []


def test_an_openai_client_calls_claude_with_an_anthropic_key_in_x_api_key(gateway, token):
    ant_key, openai_key = own("sk-ant-api03-"), own("sk-proj-")
    client = openai_client(gateway, token, openai_key, **{"x-api-key": ant_key})

    completion = client.chat.completions.create(model="haiku", messages=HELLO)
    chunks = list(client.chat.completions.create(model="haiku", messages=HELLO, stream=True))
    own_model = client.chat.completions.create(model="gpt-5-mini", messages=HELLO)

    assert completion.choices[0].message.content and chunks and own_model.choices
    to_claude, streamed, to_openai = gateway.upstream_requests()
    for sent in (to_claude, streamed):
        assert sent["path"] == "/v1/messages"
        assert sent["headers"]["x-api-key"] == ant_key
        assert openai_key not in json.dumps(sent)
    assert to_openai["headers"]["authorization"] == f"Bearer {openai_key}"
    assert ant_key not in json.dumps(to_openai)


def test_an_anthropic_key_is_anthropics_in_an_openai_clients_bearer_header(gateway, token):
    ant_key = own("sk-ant-oat01-")  # as Claude Code sends its OAuth token
    client = openai_client(gateway, token, ant_key)

    completion = client.chat.completions.create(model="haiku", messages=HELLO)
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="gpt-5-mini", messages=HELLO)

    assert completion.choices[0].message.content
    assert "you sent an Anthropic key (in authorization)" in refused.value.body["message"]
    (sent,) = gateway.upstream_requests()
    assert sent["path"] == "/v1/messages"
    assert sent["headers"]["x-api-key"] == ant_key
    assert "authorization" not in sent["headers"]


def test_without_a_provider_key_the_token_in_x_metis_token_uses_stored_credentials(gateway, token):
    response = openai_client(gateway, token, "unused").with_options(
        default_headers={"Authorization": "", "x-metis-token": token}
    )
    completion = response.chat.completions.create(model="haiku", messages=HELLO)

    assert completion.choices[0].message.content
    (sent,) = gateway.upstream_requests()
    assert sent["headers"]["x-api-key"] == "sk-ant-stored-credential"


def test_a_key_in_the_anthropic_header_that_is_not_anthropics_never_reaches_anthropic(
    gateway, token
):
    client = anthropic_client(gateway, token, own("sk-ant-api03-")).with_options(
        default_headers={"x-metis-token": token, "x-api-key": own("sk-proj-")}
    )
    stranger = anthropic.Anthropic(base_url=gateway.url, api_key="unused", max_retries=0,
                                   default_headers={"x-metis-token": token,
                                                    "Authorization": "",
                                                    "x-api-key": own("sk-proj-")})  # fmt: skip

    with pytest.raises(anthropic.BadRequestError) as refused:
        stranger.messages.count_tokens(model="haiku", messages=HELLO)
    counted = client.messages.count_tokens(model="haiku", messages=HELLO)

    assert "you sent an OpenAI key (in x-api-key)" in refused.value.body["error"]["message"]
    assert counted.input_tokens > 0
    (sent,) = gateway.upstream_requests()
    assert sent["path"] == "/v1/messages/count_tokens"
    assert sent["headers"]["x-api-key"].startswith("sk-ant-api03-")
