"""What the gateway answers when a call cannot be served: in the caller's shape, never a 500."""

from __future__ import annotations

import logging
import socket
import uuid
from datetime import timedelta

import anthropic
import httpx
import openai
import pytest
from django.db import connection
from django.utils import timezone

from gateway import routing
from tests.factories import make_key

HELLO = [{"role": "user", "content": "Say hello"}]
ANTHROPIC_BODY = {"model": "haiku", "max_tokens": 32, "messages": HELLO}
OPENAI_BODY = {"model": "gpt-5-mini", "messages": HELLO}


def anthropic_client(gateway, api_key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=api_key, max_retries=0)


def openai_client(gateway, api_key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=api_key, max_retries=0)


def post(gateway, path: str, token: str | None, **kwargs) -> httpx.Response:
    headers = {"x-api-key": token} if token else {}
    headers |= kwargs.pop("headers", {})
    return httpx.post(f"{gateway.url}{path}", headers=headers, timeout=30, **kwargs)


def is_anthropic_error(response: httpx.Response, error_type: str) -> bool:
    body = response.json()
    return body["type"] == "error" and body["error"]["type"] == error_type


def is_openai_error(response: httpx.Response) -> bool:
    return set(response.json()) == {"error"} and response.json()["error"]["message"]


def with_fault(spec: str) -> list[dict]:
    return [{"role": "user", "content": f"Say hello [[fault:{spec} id={uuid.uuid4()}]]"}]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_call_without_a_key_gets_401_in_both_shapes(gateway):
    anthropic_reply = post(gateway, "/v1/messages", None, json=ANTHROPIC_BODY)
    assert anthropic_reply.status_code == 401
    assert is_anthropic_error(anthropic_reply, "authentication_error")
    assert anthropic_reply.headers["x-should-retry"] == "false"
    openai_reply = post(gateway, "/v1/chat/completions", None, json=OPENAI_BODY)
    assert openai_reply.status_code == 401 and is_openai_error(openai_reply)
    assert openai_reply.headers["x-should-retry"] == "false"


@pytest.mark.parametrize("kind", ["bad", "revoked", "expired"])
def test_an_unusable_key_gets_401_in_both_shapes(gateway, kind):
    if kind == "bad":
        token = "gw_" + "x" * 40
    else:
        past = timezone.now() - timedelta(minutes=5)
        _, token = make_key(
            revoked=kind == "revoked", expires_at=past if kind == "expired" else None
        )
    with pytest.raises(anthropic.AuthenticationError) as refused:
        anthropic_client(gateway, token).messages.create(**ANTHROPIC_BODY)
    assert refused.value.body["error"]["type"] == "authentication_error"
    assert refused.value.response.headers["x-should-retry"] == "false"
    with pytest.raises(openai.AuthenticationError) as refused_openai:
        openai_client(gateway, token).chat.completions.create(**OPENAI_BODY)
    assert refused_openai.value.code == "invalid_api_key"
    assert refused_openai.value.response.headers["x-should-retry"] == "false"
    assert gateway.upstream_requests() == []


def test_a_model_outside_the_keys_list_gets_403_and_its_alias_target_is_allowed(gateway):
    _, token = make_key(allowed_models=["haiku"])
    client = anthropic_client(gateway, token)
    with pytest.raises(anthropic.PermissionDeniedError) as refused:
        client.messages.create(**{**ANTHROPIC_BODY, "model": "sonnet"})
    assert refused.value.response.headers["x-should-retry"] == "false"
    assert "sonnet" in refused.value.message
    message = client.messages.create(**{**ANTHROPIC_BODY, "model": "claude-haiku-4-5"})
    assert message.content[0].text
    with pytest.raises(openai.PermissionDeniedError):
        openai_client(gateway, token).chat.completions.create(**OPENAI_BODY)


def test_models_without_a_key_get_401_in_the_shape_the_sdk_speaks(gateway):
    anthropic_reply = httpx.get(
        f"{gateway.url}/v1/models", headers={"anthropic-version": "2023-06-01"}
    )
    assert anthropic_reply.status_code == 401
    assert is_anthropic_error(anthropic_reply, "authentication_error")
    openai_reply = httpx.get(f"{gateway.url}/v1/models")
    assert openai_reply.status_code == 401 and is_openai_error(openai_reply)


def test_an_unknown_model_gets_404_naming_it(gateway, token):
    with pytest.raises(anthropic.NotFoundError) as missing:
        anthropic_client(gateway, token).messages.create(**{**ANTHROPIC_BODY, "model": "nope-1"})
    assert "nope-1" in missing.value.message
    with pytest.raises(openai.NotFoundError) as missing_openai:
        openai_client(gateway, token).chat.completions.create(**{**OPENAI_BODY, "model": "nope-1"})
    assert "nope-1" in missing_openai.value.message
    assert gateway.upstream_requests() == []


def test_a_path_metis_does_not_serve_gets_404_naming_what_it_serves(gateway, token):
    with pytest.raises(openai.NotFoundError) as missing:
        openai_client(gateway, token).images.generate(model="gpt-image-1", prompt="x")
    assert "POST /v1/images/generations" in missing.value.message
    assert "POST /v1/embeddings" in missing.value.message
    assert "POST /v1/chat/completions" in missing.value.message
    reply = httpx.get(f"{gateway.url}/v1/nothing", headers={"anthropic-version": "2023-06-01"})
    assert reply.status_code == 404 and is_anthropic_error(reply, "not_found_error")


@pytest.mark.parametrize(("method", "path"), [("PUT", "/v1/messages"),
                         ("GET", "/v1/chat/completions"), ("DELETE", "/v1/models")])  # fmt: skip
def test_a_wrong_method_gets_405_in_the_callers_shape_with_allow(gateway, token, method, path):
    reply = httpx.request(method, f"{gateway.url}{path}", headers={"x-api-key": token})
    assert reply.status_code == 405
    assert reply.headers["allow"] == ("GET" if path == "/v1/models" else "POST")
    if path == "/v1/messages":
        assert is_anthropic_error(reply, "invalid_request_error")
    else:
        assert is_openai_error(reply)
    assert method in reply.json()["error"]["message"]


MALFORMED = {
    "invalid JSON": b'{"model": "haiku", "messages": [',
    "a JSON list": b'[{"model": "haiku"}]',
    "a number model": b'{"model": 5, "max_tokens": 8, "messages": []}',
    "a string stream": b'{"model": "haiku", "max_tokens": 8, "stream": "yes", "messages": []}',
    "no messages": b'{"model": "haiku", "max_tokens": 8}',
    "not UTF-8": b'{"model": "\xff\xfe", "max_tokens": 8, "messages": []}',
    "a string max_tokens": b'{"model": "haiku", "max_tokens": "8", "messages": []}',
    "a boolean max_tokens": b'{"model": "haiku", "max_tokens": true, "messages": []}',
    "string messages": b'{"model": "haiku", "max_tokens": 8, "messages": "hi"}',
    "an empty body": b"",
    "JSON nested too deep": b"[" * 2000 + b"]" * 2000,
}


@pytest.mark.parametrize("content", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_body_gets_400_in_the_callers_shape(gateway, token, content):
    anthropic_reply = post(gateway, "/v1/messages", token, content=content)
    assert anthropic_reply.status_code == 400
    assert is_anthropic_error(anthropic_reply, "invalid_request_error")
    openai_reply = post(gateway, "/v1/chat/completions", token, content=content)
    assert openai_reply.status_code == 400 and is_openai_error(openai_reply)
    assert gateway.upstream_requests() == []


def test_messages_without_max_tokens_get_400_naming_it(gateway, token):
    reply = post(gateway, "/v1/messages", token, json={"model": "haiku", "messages": HELLO})
    assert reply.status_code == 400 and is_anthropic_error(reply, "invalid_request_error")
    assert "max_tokens" in reply.json()["error"]["message"]


def test_an_oversized_body_gets_413_in_the_callers_shape(gateway, token, settings):
    settings.METIS_MAX_BODY_BYTES = 1000
    big = [{"role": "user", "content": "x" * 2000}]
    anthropic_reply = post(gateway, "/v1/messages", token, json={**ANTHROPIC_BODY, "messages": big})
    assert anthropic_reply.status_code == 413
    assert is_anthropic_error(anthropic_reply, "request_too_large")
    openai_reply = post(
        gateway, "/v1/chat/completions", token, json={**OPENAI_BODY, "messages": big}
    )
    assert openai_reply.status_code == 413 and is_openai_error(openai_reply)
    assert gateway.upstream_requests() == []


@pytest.mark.parametrize("status", [429, 529])
def test_an_upstream_overload_once_is_retried_to_success(gateway, token, status):
    message = anthropic_client(gateway, token).messages.create(
        **{**ANTHROPIC_BODY, "messages": with_fault(f"{status}*1")}
    )
    assert message.content[0].text
    (completed,) = gateway.events("llm.call_completed")
    assert completed["retries"] == 1 and completed["status"] == 200
    assert [r["status"] for r in gateway.upstream_requests()] == [status, 200]


def test_an_upstream_500_is_relayed_once_retries_run_out(gateway, token, settings):
    with pytest.raises(anthropic.InternalServerError) as failed:
        anthropic_client(gateway, token).messages.create(
            **{**ANTHROPIC_BODY, "messages": with_fault("500")}
        )
    assert failed.value.status_code == 500
    assert failed.value.body["error"]["type"] == "api_error"
    assert "mock fault 500" in failed.value.body["error"]["message"]
    (completed,) = gateway.events("llm.call_completed")
    assert completed["retries"] == settings.METIS_UPSTREAM_RETRIES
    assert completed["error_class"] == "UPSTREAM_500" and completed["status"] == 500
    assert len(gateway.upstream_requests()) == settings.METIS_UPSTREAM_RETRIES + 1


def test_an_unreachable_provider_gets_502_in_the_callers_shape(gateway, token, settings):
    settings.METIS_ANTHROPIC_BASE_URL = f"http://127.0.0.1:{closed_port()}"
    settings.METIS_OPENAI_BASE_URL = settings.METIS_ANTHROPIC_BASE_URL
    routing.forget_catalog()
    anthropic_reply = post(gateway, "/v1/messages", token, json=ANTHROPIC_BODY)
    assert anthropic_reply.status_code == 502 and is_anthropic_error(anthropic_reply, "api_error")
    openai_reply = post(gateway, "/v1/chat/completions", token, json=OPENAI_BODY)
    assert openai_reply.status_code == 502 and is_openai_error(openai_reply)
    completed = gateway.events("llm.call_completed")
    assert [c["error_class"] for c in completed] == ["UPSTREAM_UNREACHABLE"] * 2


def test_a_provider_without_credentials_gets_503_saying_so(gateway, token, settings):
    settings.METIS_ANTHROPIC_API_KEY = ""
    routing.forget_catalog()
    reply = post(gateway, "/v1/messages", token, json=ANTHROPIC_BODY)
    assert reply.status_code == 503 and is_anthropic_error(reply, "api_error")
    assert "No credentials for provider 'anthropic'" in reply.json()["error"]["message"]
    assert gateway.upstream_requests() == []


def every_stored_value() -> str:
    dump = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            dump.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(dump)


def test_pass_through_mode_forwards_the_clients_key_and_keeps_it_nowhere(gateway, token, caplog):
    caplog.set_level(logging.DEBUG)
    own_key = f"sk-ant-own-{uuid.uuid4().hex}"
    client = anthropic.Anthropic(
        base_url=gateway.url,
        api_key=own_key,
        default_headers={"x-metis-token": token},
        max_retries=0,
    )
    message = client.messages.create(**ANTHROPIC_BODY)
    with client.messages.stream(**ANTHROPIC_BODY) as stream:
        assert "".join(stream.text_stream)
    assert message.content[0].text
    sent = gateway.upstream_requests()
    assert [r["headers"]["x-api-key"] for r in sent] == [own_key, own_key]
    assert all("x-metis-token" not in r["headers"] for r in sent)
    completed = gateway.events("llm.call_completed")
    assert [c["user"] for c in completed] == ["alice", "alice"]
    stored = every_stored_value()
    assert completed[0]["request_id"] in stored  # the dump does see the events
    assert own_key not in stored
    assert own_key not in caplog.text
    assert all(own_key not in str(record.__dict__) for record in caplog.records)


@pytest.mark.parametrize(
    ("path", "body", "headers"),
    [
        ("/v1/messages", ANTHROPIC_BODY, {"anthropic-version": "2023-06-01"}),
        ("/v1/chat/completions", OPENAI_BODY, {}),
    ],
)
def test_a_gateway_failure_is_a_500_in_the_callers_shape_and_logged(
    gateway, token, monkeypatch, caplog, path, body, headers
):
    """The last resort, which no input reaches: a proxied view that raises."""
    from gateway import api

    async def broken(request, shape):
        raise RuntimeError("a bug in the gateway")

    monkeypatch.setattr(api, "forward", broken)
    with caplog.at_level(logging.ERROR, logger="django.request"):
        answer = httpx.post(f"{gateway.url}{path}", json=body,
                            headers={"authorization": f"Bearer {token}", **headers})  # fmt: skip
    assert answer.status_code == 500
    error = answer.json()["error"]
    assert "The gateway failed on this request" in error["message"]
    if path == "/v1/messages":
        assert answer.json()["type"] == "error"  # Anthropic's envelope
    assert any("a bug in the gateway" in str(r.exc_info) for r in caplog.records if r.exc_info)
