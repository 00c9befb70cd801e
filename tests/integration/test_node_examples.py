"""examples/gateway/node/ runs as written (`npm ci` of its lockfile, then `node`) against a real
gateway and the mock provider, and every call it makes is recorded. The same install then
drives the openai SDK's Responses API with tools, reasoning and structured output, against an
OpenAI model and a Claude model (across shapes).

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
SDK_SCRIPT = Path(__file__).resolve().parent / "node" / "responses_sdk.mjs"
MISSING = "node and npm are not installed (apt-get install nodejs npm)"


@pytest.fixture(scope="session")
def node_examples(tmp_path_factory) -> Path:
    """A copy of examples/gateway/node with its locked packages installed, once per run."""
    missing = MISSING if shutil.which("node") is None or shutil.which("npm") is None else None
    if missing is None and _node_major() < 20:
        missing = "the Node SDKs need Node.js 20 or later"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{missing}; in CI they must be there")
        pytest.skip(missing)
    work = tmp_path_factory.mktemp("node-examples")
    for source in [*EXAMPLES.glob("*.json"), *EXAMPLES.glob("*.mjs"), SDK_SCRIPT]:
        shutil.copy(source, work)
    done = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=work, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
    return work


def _node_major() -> int:
    version = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout
    return int(version.lstrip("v").split(".")[0] or 0)


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


@pytest.mark.parametrize(
    ("asked", "recorded"),
    [
        pytest.param("gpt-5-mini", "gpt-5-mini", id="openai-model"),
        pytest.param("haiku", "claude-haiku-4-5", id="claude-model"),
    ],
)
def test_the_openai_node_sdk_responses_with_tools_reasoning_and_structured_output(
    node_examples, gateway, token, asked, recorded
):
    claude = recorded.startswith("claude")
    # Only across shapes does Chat's response_format go through the gateway's own mapping
    # (the mock answers OpenAI's response_format in plain text, so it is left out there).
    chat = {} if claude else {"CHAT": "0"}
    out = json.loads(run_node(node_examples, SDK_SCRIPT.name, gateway, token, MODEL=asked, **chat))

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
    if claude:  # Claude's thinking comes back as text; its tokens are not counted apart
        assert out["reasoning"]["summary"].startswith("The user said")
    else:  # OpenAI's reasoning is hidden but counted
        assert out["reasoning"]["reasoning_tokens"] > 0
    assert f"Hello from mock {recorded}" in out["reasoning"]["text"]
    answers = [out["structured"], out["chat_structured"]] if claude else [out["structured"]]
    for answer in answers:
        assert set(answer) == {"greeting", "words"}
        assert isinstance(answer["greeting"], str) and isinstance(answer["words"], int)

    calls = gateway.events("llm.call_completed")
    shapes = ["responses"] * 5 + (["openai"] if claude else [])
    assert [c["inbound_shape"] for c in calls] == shapes
    for call in calls:
        assert call["status"] == 200, call
        assert call["model"] == recorded
        assert Decimal(str(call["cost_usd"])) > 0
    upstream_path = "/v1/messages" if claude else "/v1/responses"
    sent = [r["body"] for r in gateway.upstream_requests() if r["path"] == upstream_path]
    assert len(sent) == len(shapes)
    assert all(body["model"] == recorded for body in sent)
    if claude:
        assert sent[3]["thinking"]["type"] == "enabled"
        assert sent[3]["thinking"]["budget_tokens"] < 4096  # effort "low", as the README maps it
        assert sent[5]["thinking"]["type"] == "enabled"  # reasoning_effort, on Chat
    else:  # same shape: passed through as the SDK sent it
        assert sent[1]["input"][-1]["type"] == "function_call_output"
        assert sent[3]["reasoning"] == {"effort": "low"}
        assert sent[4]["text"]["format"]["type"] == "json_schema"
