"""The seed's smoke test: "the same call appears in the gateway's stderr log". A real
`metis gateway` writes one access line per call (METIS_ACCESS_LOG), never a secret."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys

import anthropic
import openai
import orjson
import pytest
from django.conf import settings

from mock_provider import MockProviderThread
from tests.integration.gateway_process import GatewayProcess, gateway_env, issue_key

SQLITE = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
PROVIDER_KEY = "sk-ant-provider-secret-0123456789"
CLIENT_PROVIDER_KEY = "sk-proj-client-own-key-9876543210"  # an OpenAI key: gpt-5-mini
PROMPT = "Say hello in one word, secret-prompt-marker."

pytestmark = pytest.mark.skipif(not SQLITE, reason="the subprocess writes its own SQLite")


def run_calls(tmp_path, **env: str) -> tuple[str, str, list[dict]]:
    """Two calls (Anthropic, then OpenAI streamed, in pass-through mode) through a real
    gateway: (its stderr and stdout, the token, the calls' llm.call_completed events)."""
    with MockProviderThread(token_delay=0) as mock:
        environment = gateway_env(tmp_path, mock.url)
        environment.update(METIS_ANTHROPIC_API_KEY=PROVIDER_KEY, METIS_LOG_LEVEL="INFO", **env)
        token = issue_key(environment)
        gateway = GatewayProcess(environment)
        try:
            client = anthropic.Anthropic(base_url=gateway.url, api_key=token, max_retries=0)
            client.messages.create(
                model="haiku", max_tokens=64, messages=[{"role": "user", "content": PROMPT}]
            )
            passing = openai.OpenAI(
                base_url=f"{gateway.url}/v1",
                api_key=CLIENT_PROVIDER_KEY,
                default_headers={"x-metis-token": token},
                max_retries=0,
            )
            list(
                passing.chat.completions.create(
                    model="gpt-5-mini", stream=True, messages=[{"role": "user", "content": PROMPT}]
                )
            )
        finally:
            assert gateway.stop() == 0, gateway.output()
    with sqlite3.connect(tmp_path / "metis.db") as conn:
        rows = conn.execute(
            "SELECT payload_json FROM events WHERE type = 'llm.call_completed' ORDER BY id"
        ).fetchall()
    return gateway.output(), token, [orjson.loads(payload) for (payload,) in rows]


def access_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if "gateway.call" in line]


def assert_no_secret(output: str, token: str) -> None:
    for secret in (token, PROVIDER_KEY, CLIENT_PROVIDER_KEY, "secret-prompt-marker"):
        assert secret not in output


def test_each_call_writes_one_text_line_with_its_fields_and_no_secret(tmp_path):
    output, token, events = run_calls(tmp_path)
    lines = access_lines(output)
    assert len(lines) == len(events) == 2, output
    for line, event in zip(lines, events, strict=True):
        fields = dict(re.findall(r"(\w+)=(\S+)", line))
        assert fields["request_id"] == event["request_id"]
        assert fields["key_id"] == event["gateway_key_id"]
        assert fields["model"] == event["model"]
        assert fields["status"] == "200"
        assert int(fields["input_tokens"]) == event["input_tokens"] > 0
        assert int(fields["output_tokens"]) == event["output_tokens"] > 0
        assert fields["cache_read_tokens"] == str(event["cache_read_input_tokens"])
        assert float(fields["cost_usd"]) == event["cost_usd"] > 0
        assert float(fields["latency_ms"]) > 0
    assert "stream=true" in lines[1]
    assert_no_secret(output, token)


def test_json_mode_writes_one_object_per_line(tmp_path):
    output, token, events = run_calls(tmp_path, METIS_ACCESS_LOG="json")
    objects = [orjson.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert len(objects) == len(events) == 2, output
    for logged, event in zip(objects, events, strict=True):
        assert logged["event"] == "gateway.call"
        assert (logged["request_id"], logged["key_id"]) == (
            event["request_id"],
            event["gateway_key_id"],
        )
        assert (logged["model"], logged["status"]) == (event["model"], 200)
        assert logged["input_tokens"] == event["input_tokens"]
        assert logged["output_tokens"] == event["output_tokens"]
        assert logged["cost_usd"] == event["cost_usd"]  # the same JSON number
        assert logged["latency_ms"] == event["latency_ms"]
    assert_no_secret(output, token)


def test_off_mode_writes_no_line(tmp_path):
    output, token, events = run_calls(tmp_path, METIS_ACCESS_LOG="off")
    assert len(events) == 2
    assert access_lines(output) == []
    assert_no_secret(output, token)


def test_a_bad_mode_is_one_line_at_start(tmp_path):
    env = gateway_env(tmp_path, "http://127.0.0.1:9")
    env["METIS_ACCESS_LOG"] = "yes"
    done = subprocess.run(
        [sys.executable, "-m", "metis_site.cli", "gateway", "--port", "0"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "metis: METIS_ACCESS_LOG must be 'text', 'json' or 'off', got 'yes'"
    ]
