"""`metis gateway` and `metis serve` bound beyond loopback say, in one line, that they
need TLS in front; on loopback they say nothing of the kind."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.gateway_process import free_port

WARNING = "put TLS in front (docs/deployment.md)"


def started_output(command: str, host: str, home: Path, health: str) -> str:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(METIS_HOME=str(home), PYTHONUNBUFFERED="1")
    log = home.parent / f"{command}-{host}.log"
    # serve alone: with its gateway child it would print the gateway's warning too.
    alone = ["--no-gateway"] if command == "serve" else []
    args = [command, "--host", host, "--port", str(port), *alone]
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "metis_site.cli", *args],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                httpx.get(f"http://127.0.0.1:{port}{health}", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.1)
    finally:
        process.terminate()
        process.wait(30)
    return log.read_text()


@pytest.mark.parametrize(("command", "health"), [("gateway", "/healthz"), ("serve", "/health")])
def test_binding_beyond_loopback_warns_in_one_line_and_loopback_does_not(tmp_path, command, health):
    wide = started_output(command, "0.0.0.0", tmp_path / "home", health)
    lines = [line for line in wide.splitlines() if WARNING in line]
    assert len(lines) == 1, wide
    assert lines[0].startswith("metis: warning: listening beyond loopback on plain HTTP")
    local = started_output(command, "127.0.0.1", tmp_path / "home", health)
    assert WARNING not in local
