"""`metis gateway --workers N`: one port served by N real processes (uvicorn's supervisor),
every call recorded once, a dead worker's journal recovered by its replacement; refused
without REDIS_URL, since budgets would then be per process."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import httpx
import orjson
import pytest
import redis
from django.conf import settings

from mock_provider import MockProviderThread
from tests.integration.gateway_process import Load, free_port, gateway_env, issue_key
from tests.integration.test_quota import RAW, worst_case

SQLITE = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
# A database number of its own on the shared Redis: only this test's budget keys live there.
REDIS_URL = "redis://127.0.0.1:6379/11"
REPO = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not SQLITE, reason="the workers write their own SQLite"),
]


@pytest.fixture
def redis_url() -> str:
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
        for key in client.scan_iter("metis:budget:*"):
            client.delete(key)
    except redis.ConnectionError:
        if os.environ.get("CI"):
            raise
        pytest.skip("no Redis at 127.0.0.1:6379 (CI always has one)")
    return REDIS_URL


class Workers:
    def __init__(self, env: dict[str, str], workers: int = 2) -> None:
        self.port = free_port()
        self.log = Path(env["METIS_HOME"]) / f"workers-{self.port}.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "metis_site.cli", "gateway", "--port", str(self.port),
                 "--workers", str(workers)],
                env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 90
        while len(self.worker_pids()) < workers or not self.healthy():
            assert self.process.poll() is None, self.output()
            assert time.monotonic() < deadline, f"the workers did not start\n{self.output()}"
            time.sleep(0.1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def worker_pids(self) -> set[int]:
        """The supervisor's children that serve (not multiprocessing's resource tracker)."""
        found = set()
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
                command = (proc / "cmdline").read_bytes()
            except (OSError, IndexError):
                continue
            if ppid == self.process.pid and b"spawn_main" in command:
                found.add(int(proc.name))
        return found

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(120)

    def logged_calls(self) -> list[dict]:
        return [orjson.loads(line) for line in self.output().splitlines() if line[:1] == "{"]


def completed(home: Path) -> list[dict]:
    with sqlite3.connect(home / "metis.db") as conn:
        rows = conn.execute(
            "SELECT payload_json FROM events WHERE type = 'llm.call_completed'"
        ).fetchall()
    return [orjson.loads(payload) for (payload,) in rows]


async def concurrent_calls(url: str, token: str, count: int) -> list[int]:
    body = {"model": "haiku", "max_tokens": 32,
            "messages": [{"role": "user", "content": "hello [[fault:slow:0.3]]"}]}  # fmt: skip
    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        responses = await asyncio.gather(*(
            client.post("/v1/messages", json=body, headers={"x-api-key": token})
            for _ in range(count)
        ))  # fmt: skip
    return [r.status_code for r in responses]


def test_two_workers_serve_one_port_and_record_every_call_once(tmp_path, redis_url):
    with MockProviderThread(token_delay=0) as mock:
        env = gateway_env(tmp_path, mock.url)
        env.update(REDIS_URL=redis_url, METIS_ACCESS_LOG="json")
        token = issue_key(env)
        workers = Workers(env)
        statuses: list[int] = []
        try:
            pids = workers.worker_pids()
            # The kernel does not deal connections out evenly: one worker may accept a
            # whole wave. More waves until both have answered.
            for _ in range(15):
                statuses += asyncio.run(concurrent_calls(workers.url, token, 40))
                if {line["pid"] for line in workers.logged_calls()} == pids:
                    break
        finally:
            returncode = workers.stop()
    assert returncode == 0, workers.output()
    assert statuses == [200] * len(statuses)
    logged = workers.logged_calls()
    served_by = Counter(line["pid"] for line in logged)
    assert set(served_by) == pids and len(pids) == 2, served_by  # both workers answered
    events = completed(tmp_path)
    ids = Counter(event["request_id"] for event in events)
    assert len(events) == len(statuses), "a call lost or recorded twice"
    assert set(ids.values()) == {1}, "a call recorded twice"
    assert ids.keys() == {line["request_id"] for line in logged}
    assert not list((tmp_path / "journal").glob("*.log")), "a clean stop leaves no journal"


def test_a_killed_worker_is_replaced_and_its_calls_recovered(tmp_path, redis_url):
    with MockProviderThread(token_delay=0.02) as mock:
        env = gateway_env(tmp_path, mock.url)
        env.update(REDIS_URL=redis_url)
        token = issue_key(env)
        workers = Workers(env)
        load = Load(workers.url, token)
        left: list[Path] = []
        victims: list[int] = []

        def kill() -> None:
            # A worker that is serving calls (one may have taken every connection so far).
            victims.append(int(workers.output().rsplit(" pid=", 1)[1].split()[0]))
            os.kill(victims[0], signal.SIGKILL)
            left.extend((tmp_path / "journal").glob(f"{victims[0]}-*.log"))

        try:
            asyncio.run(load.run(clients=24, answers=60, during=kill))
            (victim,) = victims
            # The supervisor starts a replacement, whose start recovers the victim's journal.
            deadline = time.monotonic() + 90
            while list((tmp_path / "journal").glob(f"{victim}-*.log")):
                assert time.monotonic() < deadline, f"not recovered\n{workers.output()}"
                time.sleep(0.2)
            while len(workers.worker_pids() - {victim}) < 2:  # the victim's replacement
                assert time.monotonic() < deadline, workers.output()
                time.sleep(0.2)
        finally:
            assert workers.stop() == 0, workers.output()
    assert left, "the victim had no journal when it died: the test proves nothing"
    events = completed(tmp_path)
    calls = Counter(event["user"] for event in events)
    answered = [o.label for o in load.outcomes if o.complete and o.status == 200]
    accepted = [o.label for o in load.outcomes if o.status is not None]
    assert answered and not [label for label in accepted if not calls[label]], "a call was lost"
    assert set(calls.values()) == {1}, "a call was recorded twice"
    assert any(e["error_class"] == "GATEWAY_STOPPED" for e in events), "none was in flight"
    assert not list((tmp_path / "journal").glob("*.log")), "the dead worker's journal is left"


def metis(env: dict[str, str], *args: str) -> str:
    command = [sys.executable, "-m", "metis_site.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout


def test_a_hard_cap_and_a_revocation_hold_across_workers(tmp_path, redis_url):
    with MockProviderThread() as mock:
        env = gateway_env(tmp_path, mock.url)
        # Nothing expires from a worker's key cache: only the published revocation helps.
        env.update(REDIS_URL=redis_url, METIS_KEY_CACHE_SECONDS="600")
        metis(env, "gateway", "list-keys")  # creates and migrates the database
        cap = worst_case() * 10
        metis(env, "manage", "shell", "-c",
              "from identity.models import Team, Quota; t = Team.objects.create(name='eng'); "
              f"Quota.objects.create(team=t, period='day', hard_cap_usd='{cap}')")  # fmt: skip
        issued = metis(env, "gateway", "issue-key", "--name", "shared", "--workspace",
                       str(tmp_path), "--team", "eng")  # fmt: skip
        key_id, token = (line.split(": ")[1] for line in issued.splitlines()[:2])
        workers = Workers(env)
        try:

            async def waves(count: int) -> list[int]:
                # Waves, not one burst: alone, each worker would go on admitting calls
                # until its own view of the spend reached the cap, twice the cap in all.
                headers = {"x-api-key": token, "anthropic-version": "2023-06-01"}
                statuses: list[int] = []
                for _ in range(count):
                    async with httpx.AsyncClient(base_url=workers.url, timeout=60) as client:
                        responses = await asyncio.gather(*(
                            client.post("/v1/messages", headers=headers, content=RAW)
                            for _ in range(40)
                        ))  # fmt: skip
                    statuses += [r.status_code for r in responses]
                return statuses

            capped = asyncio.run(waves(8))
            metis(env, "gateway", "revoke-key", key_id)
            deadline = time.monotonic() + 5
            while set(revoked := asyncio.run(waves(1))) != {401}:
                assert time.monotonic() < deadline, Counter(revoked)
        finally:
            assert workers.stop() == 0, workers.output()
    assert set(capped) == {200, 429}
    with sqlite3.connect(tmp_path / "metis.db") as database:
        (units,) = database.execute(  # exact: money is stored in integer 1e-10 USD units
            "SELECT sum(cost_usd) FROM analytics_call WHERE status = 200"
        ).fetchone()
    assert 0 < Decimal(units) * Decimal("1e-10") <= cap


def test_more_than_one_worker_without_redis_is_refused_in_one_line(tmp_path):
    env = gateway_env(tmp_path, "http://127.0.0.1:9")
    done = subprocess.run(
        [sys.executable, "-m", "metis_site.cli", "gateway", "--port", "0", "--workers", "2"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "metis: --workers 2 needs REDIS_URL (without it budgets and rate limits are held in"
        " each process): set REDIS_URL=redis://HOST:6379/0, or run one worker"
    ]
