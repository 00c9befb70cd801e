"""The real Codex CLI (`codex exec`) against the gateway and the mock provider, configured by
examples/gateway/codex/config.toml: a plain prompt, then a turn where Codex runs a shell
command and sends its output back, against an OpenAI model and against a Claude model.

Install: `npm install -g @openai/codex`. Skipped when `codex` is missing, except in CI (`CI`
set), where a missing CLI fails the run."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from decimal import Decimal
from pathlib import Path

import pytest

from tests.factories import make_key

pytestmark = pytest.mark.codex

CODEX = shutil.which("codex")
MISSING = "the Codex CLI is not installed (npm install -g @openai/codex)"
ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "examples" / "gateway" / "codex" / "config.toml"
EXAMPLE_BASE_URL = "http://127.0.0.1:8422/v1"
TIMEOUT = 120

# (model as Codex sends it, the model the event records, the provider's path upstream)
OPENAI = ("gpt-5-mini", "gpt-5-mini", "/v1/responses")
CLAUDE = ("haiku", "claude-haiku-4-5", "/v1/messages")
MODELS = [pytest.param(OPENAI, id="openai-model"), pytest.param(CLAUDE, id="claude-model")]


@pytest.fixture
def codex() -> str:
    if CODEX is None:
        if os.environ.get("CI"):
            pytest.fail(f"{MISSING}; in CI it must be")
        pytest.skip(MISSING)
    return CODEX


@pytest.fixture
def key(transactional_db):
    return make_key(name="codex")


def test_the_readme_shows_the_example_config():
    readme = (ROOT / "README.md").read_text()
    shown = [tomllib.loads(block) for block in re.findall(r"```toml\n(.*?)```", readme, re.S)]
    assert tomllib.loads(CONFIG.read_text()) in shown


def run_codex(codex: str, gateway, token: str, model: str, prompt: str, tmp_path: Path) -> dict:
    """`codex exec` with the example config pointed at this gateway; its JSONL events and the
    last message it printed."""
    home, work = tmp_path / "home", tmp_path / "work"
    codex_home = home / ".codex"
    codex_home.mkdir(parents=True, exist_ok=True)
    work.mkdir(exist_ok=True)
    example = CONFIG.read_text()
    assert EXAMPLE_BASE_URL in example
    (codex_home / "config.toml").write_text(example.replace(EXAMPLE_BASE_URL, f"{gateway.url}/v1"))
    last = tmp_path / "last-message.txt"
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "CODEX_HOME": str(codex_home),
        "METIS_GATEWAY_KEY": token,
        # Loopback only: anything Codex tries to reach elsewhere fails at once.
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    command = [
        codex, "exec", prompt, "--model", model, "--json", "--output-last-message", str(last),
        "--strict-config",  # the example must hold for the installed version, key by key
        "--sandbox", "read-only", "--skip-git-repo-check", "--ephemeral", "--color", "never",
        # Fail fast: the gateway's answer is the one under test, not Codex's retries.
        "-c", "model_providers.metis.request_max_retries=0",
        "-c", "model_providers.metis.stream_max_retries=0",
    ]  # fmt: skip
    done = subprocess.run(
        command, env=env, cwd=work, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    sent = [(r["method"], r["path"], r.get("status")) for r in gateway.upstream_requests()]
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\nupstream saw: {sent}"
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return {"events": events, "last": last.read_text()}


def calls_of(gateway, key_id: str) -> list[dict]:
    return [e for e in gateway.events("llm.call_completed") if e["gateway_key_id"] == key_id]


def assert_recorded(calls: list[dict], model: str) -> None:
    assert calls
    for call in calls:
        assert call["status"] == 200, call
        assert call["inbound_shape"] == "responses"
        assert call["model"] == model
        assert call["stream"] is True
        assert call["dropped_params"] == []  # the key does not drop: nothing was refused either
        assert Decimal(str(call["cost_usd"])) > 0


@pytest.mark.parametrize("model", MODELS)
def test_codex_gets_the_mock_reply_through_the_gateway(codex, gateway, key, tmp_path, model):
    asked, recorded, upstream_path = model
    gateway_key, token = key
    result = run_codex(codex, gateway, token, asked, "Say hello to Metis", tmp_path)
    # (the mock echoes the start of the last user turn: for a Claude model that turn also
    # holds Codex's <environment_context> message, since consecutive user items make one turn)
    assert f"Hello from mock {recorded}" in result["last"]
    assert_recorded(calls_of(gateway, gateway_key.id), recorded)
    upstream = [r for r in gateway.upstream_requests() if r["path"] == upstream_path]
    assert upstream
    for request in upstream:
        credentials = request["headers"].get("authorization", request["headers"].get("x-api-key"))
        assert token not in credentials


@pytest.mark.parametrize("model", MODELS)
def test_codex_runs_a_command_and_sends_its_output_back(codex, gateway, key, tmp_path, model):
    asked, recorded, upstream_path = model
    gateway_key, token = key
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "note.txt").write_text("metis-codex-ok\n")
    # exec_command is Codex's shell tool; the mock calls it with exactly these arguments.
    directive = json.dumps({"cmd": "cat note.txt"})
    prompt = f"Read the note [[tool:exec_command {directive}]]"
    result = run_codex(codex, gateway, token, asked, prompt, tmp_path)
    ran = [
        e["item"]
        for e in result["events"]
        if e.get("type") == "item.completed" and e["item"].get("type") == "command_execution"
    ]
    assert ran and "cat note.txt" in ran[0]["command"], result["events"]
    assert "metis-codex-ok" in ran[0]["aggregated_output"]
    # The mock answers a tool result by quoting it, so the output made the round trip.
    assert "Tool said:" in result["last"]
    assert "metis-codex-ok" in result["last"]
    calls = calls_of(gateway, gateway_key.id)
    assert len(calls) >= 2
    assert_recorded(calls, recorded)
    bodies = [r["body"] for r in gateway.upstream_requests() if r["path"] == upstream_path]
    assert len(bodies) >= 2
    assert any("metis-codex-ok" in json.dumps(body) for body in bodies[1:])
