"""examples/gateway/node/ runs as written (`npm ci` of its lockfile, then `node`) against a real
gateway and the mock provider, and every call it makes is recorded. The same install then
drives the openai SDK's Responses API against a Claude model, across shapes.

Skipped when node or npm is missing, except in CI (`CI` set), where that fails the run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

pytestmark = pytest.mark.node

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "gateway" / "node"
CROSS_SHAPE = Path(__file__).resolve().parent / "node" / "responses_claude.mjs"
MISSING = "node and npm are not installed (apt-get install nodejs npm)"


@pytest.fixture(scope="session")
def node_examples(tmp_path_factory) -> Path:
    """A copy of examples/gateway/node with its locked packages installed, once per run."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        if os.environ.get("CI"):
            pytest.fail(f"{MISSING}; in CI they must be")
        pytest.skip(MISSING)
    work = tmp_path_factory.mktemp("node-examples")
    for source in [*EXAMPLES.glob("*.json"), *EXAMPLES.glob("*.mjs"), CROSS_SHAPE]:
        shutil.copy(source, work)
    done = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=work, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
    return work


def run_node(node_examples: Path, script: str, gateway, token: str, **env: str) -> str:
    environment = {**os.environ, "GATEWAY_URL": gateway.url, "GATEWAY_KEY": token, **env}
    done = subprocess.run(
        ["node", script], cwd=node_examples, env=environment,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    sent = [(r["method"], r["path"], r.get("status")) for r in gateway.upstream_requests()]
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\nupstream saw: {sent}"
    return done.stdout


@pytest.mark.parametrize(
    ("example", "shape"),
    [
        ("anthropic.mjs", "anthropic"),
        ("openai_chat.mjs", "openai"),
        ("openai_responses.mjs", "responses"),
    ],
)
def test_the_node_examples_run_and_are_recorded(node_examples, gateway, token, example, shape):
    out = run_node(node_examples, example, gateway, token)
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 2, out
    assert all("Hello from mock" in line for line in lines), out
    calls = gateway.events("llm.call_completed")
    assert [(c["inbound_shape"], c["status"]) for c in calls] == [(shape, 200)] * 2
    assert [c["stream"] for c in calls] == [False, True]
    assert all(Decimal(str(c["cost_usd"])) > 0 for c in calls)


def test_the_openai_node_sdk_calls_a_claude_model_through_responses(node_examples, gateway, token):
    out = json.loads(run_node(node_examples, CROSS_SHAPE.name, gateway, token, MODEL="haiku"))

    assert out["tool_call"] == {
        "name": "get_weather",
        "arguments": {"city": "mock"},
        "status": "completed",
    }
    assert out["after_tool"].startswith("Tool said: sunny, 21 C")
    assert out["streamed_tool_call"] == {
        "arguments": {"city": "mock"},
        "completed": "get_weather",
        "first": "response.created",
        "last": "response.completed",
    }
    assert "reasoning" in out["reasoning"]["items"]
    assert out["reasoning"]["reasoning_tokens"] > 0
    assert "Hello from mock claude-haiku-4-5" in out["reasoning"]["text"]
    for answer in (out["structured"], out["chat_structured"]):
        assert set(answer) == {"greeting", "words"}
        assert isinstance(answer["greeting"], str) and isinstance(answer["words"], int)

    calls = gateway.events("llm.call_completed")
    assert [c["inbound_shape"] for c in calls] == ["responses"] * 5 + ["openai"]
    for call in calls:
        assert call["status"] == 200, call
        assert call["model"] == "claude-haiku-4-5"
        assert Decimal(str(call["cost_usd"])) > 0
    sent = [r for r in gateway.upstream_requests() if r["path"] == "/v1/messages"]
    assert len(sent) == 6
    assert all(r["body"]["model"] == "claude-haiku-4-5" for r in sent)
    reasoned = sent[3]["body"]
    assert reasoned["thinking"]["type"] == "enabled"
    assert reasoned["thinking"]["budget_tokens"] < 4096  # effort "low", as the README maps it
    assert sent[5]["body"]["thinking"]["type"] == "enabled"  # reasoning_effort, on Chat
