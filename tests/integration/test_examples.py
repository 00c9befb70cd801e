"""examples/gateway/ runs as written against a real gateway and the mock provider, and
every call it makes is recorded."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "gateway"


def run(command: list[str], gateway, token: str) -> str:
    env = {**os.environ, "GATEWAY_URL": gateway.url, "GATEWAY_KEY": token}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize(
    ("example", "shapes"),
    [("anthropic_sdk.py", ["anthropic", "anthropic"]), ("openai_sdk.py", ["openai", "openai"])],
)
def test_the_python_sdk_examples_run_and_are_recorded(gateway, token, example, shapes):
    out = run([sys.executable, str(EXAMPLES / example)], gateway, token)
    assert len([line for line in out.splitlines() if line.strip()]) == 2, out
    calls = gateway.events("llm.call_completed")
    assert [(c["inbound_shape"], c["status"]) for c in calls] == [(s, 200) for s in shapes]
    assert [c["stream"] for c in calls] == [False, True]


def test_the_curl_example_runs_and_is_recorded(gateway, token):
    if shutil.which("curl") is None:
        if os.environ.get("CI"):
            pytest.fail("curl is missing: apt-get install curl")
        pytest.skip("curl is missing: apt-get install curl")
    out = run(["sh", str(EXAMPLES / "curl.sh")], gateway, token)
    assert '"type":"message"' in out.replace(" ", "") and "chat.completion" in out
    calls = gateway.events("llm.call_completed")
    assert [c["inbound_shape"] for c in calls] == ["anthropic", "openai"]
