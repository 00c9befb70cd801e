"""One budget across `metis serve` (agent turns, in-process) and its gateway child
(provider-shape calls): two processes, held together in Redis (REDIS_URL), real
processes on loopback in front of the mock provider.

The cap fits one call's worst case, never two: while one process holds a call's worst
case, the other must refuse its own call, whichever way round.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from mock_provider import MockProviderThread
from tests.integration.processes import REPO, free_port
from tests.integration.test_quota_redis import REDIS_URL, empty_redis

SQLITE = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not SQLITE, reason="the processes share a SQLite METIS_HOME"),
]
# claude-haiku-4-5 at $1 / $5 per million: a turn holds its 4,096 output tokens ($0.02048)
# plus its body; a gateway call asking 400 tokens holds $0.002 plus its body.
CAP = "0.021"


def metis(env: dict, *args: str) -> str:
    command = [sys.executable, "-m", "metis_site.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=True,
                          timeout=120, cwd=REPO).stdout  # fmt: skip


def wait_until_up(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 90
    while True:
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"{url} did not answer\n{log.read_text()}"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)


def gateway_call(port: int, token: str, content: str, **extra) -> httpx.Response:
    return httpx.post(
        f"http://127.0.0.1:{port}/v1/messages",
        headers={"x-api-key": token, "anthropic-version": "2023-06-01"},
        json={"model": "haiku", "max_tokens": 400,
              "messages": [{"role": "user", "content": content}], **extra},
        timeout=30,
    )  # fmt: skip


class Holding(threading.Thread):
    """A streamed request left hanging by the mock (`[[fault:hang]]`) until `release()`."""

    def __init__(self, method: str, url: str, **kwargs) -> None:
        super().__init__(daemon=True)
        self.args, self.kwargs = (method, url), kwargs
        self.started, self.done = threading.Event(), threading.Event()
        self.status: int | None = None

    def run(self) -> None:
        with httpx.Client(timeout=60) as http, http.stream(*self.args, **self.kwargs) as response:
            self.status = response.status_code
            lines = response.iter_lines()
            next(lines, None)
            self.started.set()
            self.done.wait(60)  # closing the connection then cancels the call

    def release(self) -> None:
        self.done.set()
        self.join(30)


def test_serve_and_its_gateway_hold_one_budget_between_them(tmp_path: Path):
    empty_redis()
    with MockProviderThread(token_delay=0) as mock:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
        env.update(METIS_HOME=str(tmp_path), REDIS_URL=REDIS_URL, METIS_LOG_LEVEL="WARNING",
                   METIS_ANTHROPIC_BASE_URL=mock.url, METIS_ANTHROPIC_API_KEY="sk-x",
                   PYTHONUNBUFFERED="1")  # fmt: skip
        metis(env, "gateway", "list-keys")  # creates and migrates the database
        metis(env, "manage", "shell", "-c",
              "from identity.models import Team, Quota; t = Team.objects.create(name="
              "'agents-shared'); Quota.objects.create(team=t, period='day', "
              f"hard_cap_usd='{CAP}')")  # fmt: skip
        issued = metis(env, "gateway", "issue-key", "--name", "agent-loop", "--workspace",
                       str(tmp_path), "--team", "agents-shared")  # fmt: skip
        token = issued.split("token: ")[1].split()[0]
        port, gateway_port = free_port(), free_port()
        log = tmp_path / "serve.log"
        with log.open("wb") as out:
            serve = subprocess.Popen(
                [sys.executable, "-m", "metis_site.cli", "serve", "--port", str(port),
                 "--gateway-port", str(gateway_port)],
                env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            wait_until_up(f"http://127.0.0.1:{port}/health", serve, log)
            wait_until_up(f"http://127.0.0.1:{gateway_port}/healthz", serve, log)
            sessions = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                                    headers={"Authorization": f"Bearer {token}"})  # fmt: skip
            session = sessions.post("/sessions", json={"model": "haiku"}).json()["id"]
            path = f"/sessions/{session}/messages"

            # A turn in serve holds its worst case: the gateway refuses a call meanwhile.
            turn = Holding("POST", f"{sessions.base_url}{path}",
                           headers=dict(sessions.headers),
                           json={"content": "[[fault:hang]] go", "stream": True})  # fmt: skip
            turn.start()
            assert turn.started.wait(30)
            refused_by_gateway = gateway_call(gateway_port, token, "hi")
            turn.release()
            allowed_by_gateway = wait_for_status(lambda: gateway_call(gateway_port, token, "hi"))

            # A call in the gateway holds its worst case: serve refuses a turn meanwhile.
            held = Holding("POST", f"http://127.0.0.1:{gateway_port}/v1/messages",
                           headers={"x-api-key": token, "anthropic-version": "2023-06-01"},
                           json={"model": "haiku", "max_tokens": 4096, "stream": True,
                                 "messages": [{"role": "user",
                                               "content": "[[fault:hang]]"}]})  # fmt: skip
            held.start()
            assert held.started.wait(30)
            refused_by_serve = sessions.post(path, json={"content": "hello"})
            held.release()
            allowed_by_serve = wait_for_status(lambda: sessions.post(path, json={"content": "hi"}))
            sessions.close()
        finally:
            serve.send_signal(signal.SIGTERM)
            serve.wait(120)
    assert turn.status == 200 and held.status == 200
    assert refused_by_gateway.status_code == 429, refused_by_gateway.text
    assert "Budget exceeded" in refused_by_gateway.json()["error"]["message"]
    assert allowed_by_gateway.status_code == 200
    assert refused_by_serve.status_code == 429, refused_by_serve.text
    assert refused_by_serve.json()["error"]["type"] == "budget_exceeded"
    assert allowed_by_serve.status_code == 200


def wait_for_status(send, want: int = 200) -> httpx.Response:
    """The cancelled call's hold is settled as its process notices the client left."""
    deadline = time.monotonic() + 20
    while True:
        response = send()
        if response.status_code == want or time.monotonic() > deadline:
            return response
        time.sleep(0.2)
