"""`metis serve` starts the whole product: the admin and, as a child process, the gateway,
and stops both cleanly (metis_site/servers.py). Real processes on free ports."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from mock_provider import MockProviderThread
from tests.integration.gateway_process import free_port, gateway_env, issue_key

SQLITE = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
pytestmark = pytest.mark.skipif(not SQLITE, reason="the processes write their own SQLite")
REPO = Path(__file__).resolve().parents[2]


class Serve:
    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.port, self.gateway_port = free_port(), free_port()
        self.log = Path(env["METIS_HOME"]) / "serve.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "metis_site.cli", "serve", "--port", str(self.port),
                 "--gateway-port", str(self.gateway_port), *args],
                env={**env, "PYTHONUNBUFFERED": "1"}, cwd=REPO, stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_until(self, url: str) -> None:
        deadline = time.monotonic() + 90
        while True:
            assert self.process.poll() is None, self.output()
            assert time.monotonic() < deadline, f"{url} did not answer\n{self.output()}"
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)

    def children(self) -> list[int]:
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.process.pid:
                found.append(int(stat.parent.name))
        return found

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)


def gone(pid: int, within: float = 90) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        stat = Path(f"/proc/{pid}/stat")
        if stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return True  # exited; its parent (the test runner's child) did not reap it yet
        time.sleep(0.1)
    return False


def event_counts(home: Path) -> dict[str, int]:
    with sqlite3.connect(home / "metis.db") as conn:
        return dict(conn.execute("SELECT type, count(*) FROM events GROUP BY type").fetchall())


def call(port: int, token: str) -> httpx.Response:
    return httpx.post(
        f"http://127.0.0.1:{port}/v1/messages",
        headers={"x-api-key": token},
        json={"model": "haiku", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_serve_runs_both_servers_and_a_signal_stops_both_with_the_call_recorded(tmp_path, stop):
    with MockProviderThread(token_delay=0) as mock:
        env = gateway_env(tmp_path, mock.url)
        env["METIS_LOG_LEVEL"] = "INFO"
        token = issue_key(env)
        serve = Serve(env)
        try:
            serve.wait_until(f"http://127.0.0.1:{serve.port}/health")
            serve.wait_until(f"http://127.0.0.1:{serve.gateway_port}/healthz")
            (gateway_pid,) = serve.children()
            responses = [call(serve.gateway_port, token) for _ in range(5)]
            serve.process.send_signal(stop)
            assert serve.process.wait(120) == 0, serve.output()
        finally:
            serve.stop()
    assert [r.status_code for r in responses] == [200] * 5
    assert gone(gateway_pid), "the gateway outlived metis serve"
    output = serve.output()
    assert f"gateway on http://127.0.0.1:{serve.gateway_port}" in output
    assert output.count("event=gateway.call") == 5  # the gateway's access log, on the same stderr
    assert "stopping metis serve too" not in output
    counts = event_counts(tmp_path)
    assert counts["llm.call_completed"] == counts["route.decided"] == 5, counts
    assert not list((tmp_path / "journal").glob("*.log")), "a clean stop leaves no journal"


def test_no_gateway_starts_the_admin_alone(tmp_path):
    env = gateway_env(tmp_path, "http://127.0.0.1:9")
    serve = Serve(env, "--no-gateway")
    try:
        serve.wait_until(f"http://127.0.0.1:{serve.port}/health")
        assert serve.children() == []
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{serve.gateway_port}/healthz")
        serve.process.send_signal(signal.SIGINT)
        assert serve.process.wait(60) == 0
    finally:
        serve.stop()


def test_a_gateway_that_dies_stops_serve_and_says_so(tmp_path):
    env = gateway_env(tmp_path, "http://127.0.0.1:9")
    serve = Serve(env)
    try:
        serve.wait_until(f"http://127.0.0.1:{serve.gateway_port}/healthz")
        (gateway_pid,) = serve.children()
        os.kill(gateway_pid, signal.SIGKILL)
        assert serve.process.wait(60) == 1
    finally:
        serve.stop()
    assert f"the gateway (pid {gateway_pid}) stopped with exit status -9" in serve.output()


def test_serve_killed_takes_its_gateway_with_it(tmp_path):
    env = gateway_env(tmp_path, "http://127.0.0.1:9")
    serve = Serve(env)
    try:
        serve.wait_until(f"http://127.0.0.1:{serve.gateway_port}/healthz")
        (gateway_pid,) = serve.children()
        serve.process.kill()  # no chance to stop its child: the kernel tells the child
        serve.process.wait(30)
        assert gone(gateway_pid), "an orphaned gateway kept running"
    finally:
        serve.stop()


def test_a_gateway_port_in_use_is_one_line_before_anything_starts(tmp_path):
    env = gateway_env(tmp_path, "http://127.0.0.1:9")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "metis_site.cli", "serve", "--port", str(free_port()),
             "--gateway-port", str(port)],
            env=env, cwd=REPO, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"metis: port {port} on 127.0.0.1 is already in use (is Metis already running?);"
        " pick another with --gateway-port"
    ]
