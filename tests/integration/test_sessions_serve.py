"""Agent sessions in a real `metis serve` process: local mode on loopback (no token, a
key named by id), and the turns' events written when it stops."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest
from django.conf import settings

from mock_provider import MockProviderThread
from tests.integration.gateway_process import gateway_env, issue_key
from tests.integration.serve_process import start_serve

SQLITE = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
pytestmark = pytest.mark.skipif(not SQLITE, reason="the process writes its own SQLite")


def metis(env: dict, *args: str) -> str:
    command = [sys.executable, "-m", "metis_site.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=True,
                          timeout=120).stdout  # fmt: skip


def test_local_mode_sessions_and_their_events_outlive_a_stop(tmp_path: Path):
    with MockProviderThread(token_delay=0) as mock:
        env = gateway_env(tmp_path / "home", mock.url)
        issue_key(env, name="agent-loop")
        key_id = metis(env, "gateway", "list-keys").splitlines()[1].split()[0]
        env.pop("METIS_HOME")
        serve = start_serve(tmp_path / "home", "sessions", **{
            k: v for k, v in env.items() if k.startswith("METIS_") and k != "METIS_LOG_LEVEL"
        })  # fmt: skip
        try:
            serve.wait_until_up(time.monotonic() + 90)
            with httpx.Client(base_url=serve.url, timeout=30) as http:  # no token: local mode
                keyless = http.post("/sessions", json={"model": "haiku"})
                created = http.post("/sessions", json={"model": "haiku", "key_id": key_id})
                assert created.status_code == 201, (created.text, serve.output())
                session = created.json()["id"]
                turn = http.post(f"/sessions/{session}/messages", json={"content": "hi"})
        finally:
            serve.process.send_signal(signal.SIGTERM)
            serve.process.wait(60)
    assert keyless.status_code == 400, keyless.text
    assert created.status_code == 201, created.text
    assert turn.status_code == 200, serve.output()
    with sqlite3.connect(tmp_path / "home" / "metis.db") as db:
        rows = db.execute("SELECT payload_json FROM events WHERE type = 'llm.call_completed'")
        (payload,) = [orjson.loads(row[0]) for row in rows]
    assert payload["request_id"] == turn.json()["turn"]["call_id"]
    assert (payload["inbound_shape"], payload["key_name"]) == ("in-process", "agent-loop")
