"""The real Claude Code CLI (`claude -p`) against the gateway and the mock provider:
a plain prompt, then a turn where Claude Code runs a tool and sends its result back, and
examples/gateway/claude-code/settings.json as the only configuration.

Install: `npm install -g @anthropic-ai/claude-code`. Skipped when `claude` is missing,
except in CI (`CI` set), where a missing CLI fails the run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

from identity.models import Quota
from tests.factories import make_key

pytestmark = pytest.mark.claude_code

CLAUDE = shutil.which("claude")
SETTINGS = (
    Path(__file__).resolve().parents[2] / "examples" / "gateway" / "claude-code" / "settings.json"
)
MISSING = "the Claude Code CLI is not installed (npm install -g @anthropic-ai/claude-code)"
TIMEOUT = 120


@pytest.fixture
def claude() -> str:
    if CLAUDE is None:
        if os.environ.get("CI"):
            pytest.fail(f"{MISSING}; in CI it must be")
        pytest.skip(MISSING)
    return CLAUDE


def run_claude(
    claude: str, gateway, token: str, prompt: str, tmp_path: Path, *flags: str,
    settings: dict | None = None,
) -> dict:  # fmt: skip
    done = claude_process(claude, gateway, token, prompt, tmp_path, *flags, settings=settings)
    sent = [(r["method"], r["path"], r.get("status")) for r in gateway.upstream_requests()]
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\nupstream saw: {sent}"
    return json.loads(done.stdout)


def claude_process(
    claude: str, gateway, token: str, prompt: str, tmp_path: Path, *flags: str,
    settings: dict | None = None,
) -> subprocess.CompletedProcess:  # fmt: skip
    """With `settings`, the gateway's URL and token come from ~/.claude/settings.json alone."""
    home = tmp_path / "home"
    work = tmp_path / "work"
    home.mkdir(exist_ok=True)
    work.mkdir(exist_ok=True)
    pointing = {"ANTHROPIC_BASE_URL": gateway.url, "ANTHROPIC_API_KEY": token}
    if settings is not None:
        (home / ".claude").mkdir(exist_ok=True)
        (home / ".claude" / "settings.json").write_text(json.dumps(settings))
        pointing = {}
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        **pointing,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
    }
    return subprocess.run(
        [claude, "-p", prompt, "--output-format", "json", "--max-turns", "4", *flags],
        env=env, cwd=work, capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip


def calls_of(gateway, key_id: str) -> list[dict]:
    return [e for e in gateway.events("llm.call_completed") if e["gateway_key_id"] == key_id]


@pytest.fixture
def key(transactional_db):
    return make_key(name="claude-code")


def test_claude_code_gets_the_mock_reply_through_the_gateway(claude, gateway, key, tmp_path):
    gateway_key, token = key
    result = run_claude(claude, gateway, token, "Say hello to Metis", tmp_path)
    assert result["is_error"] is False
    assert "Hello from mock" in result["result"]
    # (the mock echoes the start of the last user message: Claude Code puts a
    # <system-reminder> block before the prompt, so the prompt itself is cut off)
    calls = calls_of(gateway, gateway_key.id)
    assert calls
    assert all(c["status"] == 200 for c in calls)
    messages = [r for r in gateway.upstream_requests() if r["path"] == "/v1/messages"]
    assert messages
    assert all(r["headers"]["x-api-key"] != token for r in messages)


def test_claude_code_runs_a_tool_and_sends_its_result_back(claude, gateway, key, tmp_path):
    gateway_key, token = key
    note = tmp_path / "note.txt"
    note.write_text("metis-read-ok\n")
    directive = json.dumps({"file_path": str(note)})
    result = run_claude(
        claude, gateway, token, f"Read the note [[tool:Read {directive}]]", tmp_path,
        "--allowedTools", "Read",
    )  # fmt: skip
    assert result["is_error"] is False
    assert "Tool said:" in result["result"]
    assert "metis-read-ok" in result["result"]
    calls = calls_of(gateway, gateway_key.id)
    assert len(calls) >= 2
    assert all(c["status"] == 200 for c in calls)
    bodies = [r["body"] for r in gateway.upstream_requests() if r["path"] == "/v1/messages"]
    tool_results = [
        block
        for body in bodies
        for message in body.get("messages", [])
        if isinstance(message.get("content"), list)
        for block in message["content"]
        if block.get("type") == "tool_result"
    ]
    assert tool_results


def test_the_example_settings_point_claude_code_at_the_gateway(claude, gateway, key, tmp_path):
    gateway_key, token = key
    settings = json.loads(SETTINGS.read_text())
    assert settings["env"]["ANTHROPIC_AUTH_TOKEN"].startswith("gw_")
    settings["env"].update(ANTHROPIC_BASE_URL=gateway.url, ANTHROPIC_AUTH_TOKEN=token)
    result = run_claude(claude, gateway, token, "Say hello to Metis", tmp_path, settings=settings)
    assert result["is_error"] is False
    assert "Hello from mock" in result["result"]
    calls = calls_of(gateway, gateway_key.id)
    assert calls and all(c["status"] == 200 for c in calls)


def test_claude_code_stops_at_once_on_a_spent_budget(claude, gateway, key, tmp_path):
    # Before refusals carried x-should-retry: false, Claude Code retried this 10 times over
    # about 150 s, printing nothing.
    gateway_key, token = key
    Quota.objects.create(key=gateway_key, period="day", hard_cap_usd=Decimal("0"))
    done = claude_process(claude, gateway, token, "Say hello to Metis", tmp_path)
    assert done.returncode != 0
    assert f"key {gateway_key.id}'s daily hard cap of $0.00" in done.stdout
    refused = [c for c in calls_of(gateway, gateway_key.id) if c["error_class"] == "QUOTA_EXCEEDED"]
    assert len(refused) == 1
    assert not [r for r in gateway.upstream_requests() if r["path"] == "/v1/messages"]
