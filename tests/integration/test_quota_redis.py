"""Budgets shared by several gateway processes, on the real Redis at 127.0.0.1:6379."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import redis
from django.db import connection

from gateway.budgets import Rule, shared_ledger
from identity.models import GatewayKey, Quota, Team
from mock_provider import MockProviderThread
from tests.integration.test_quota import RAW, call, recorded_spend, worst_case

REDIS_URL = "redis://127.0.0.1:6379/15"
pytestmark = pytest.mark.redis


def empty_redis() -> None:
    """A clean database 15 on the real Redis; skipped without one locally, never in CI."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).flushdb()
    except redis.ConnectionError:
        if os.environ.get("CI"):
            raise
        pytest.skip("no Redis at 127.0.0.1:6379 (CI always has one)")


@pytest.fixture
def shared_budgets(settings):
    empty_redis()
    settings.REDIS_URL = REDIS_URL
    shared_ledger.reset()
    yield
    shared_ledger.reset()


def team_cap(amount: Decimal) -> None:
    Quota.objects.create(team=Team.objects.get(name="eng"), period="day", hard_cap_usd=amount)


def test_a_budget_in_redis_refuses_past_its_cap_and_counts_what_was_spent(
    gateway, token, shared_budgets
):
    team_cap(worst_case() * 3)
    statuses = [call(gateway, token).status_code for _ in range(8)]
    assert statuses[0] == 200 and 429 in statuses
    spent = recorded_spend(gateway)
    assert spent <= worst_case() * 3
    counter = next(redis.Redis.from_url(REDIS_URL).scan_iter("metis:budget:team:eng:*:spent"))
    deadline = time.monotonic() + 5  # settlement runs just after the response
    while time.monotonic() < deadline:
        in_redis = Decimal(redis.Redis.from_url(REDIS_URL).get(counter).decode()) * Decimal("1e-10")
        if in_redis == spent:
            break
        time.sleep(0.02)
    assert in_redis == spent


def test_settling_a_call_twice_counts_it_once(shared_budgets):
    rule = Rule("team", "settle-twice", "day", None, Decimal("1"), None, None)
    start = datetime.fromisoformat("2026-11-22T00:00:00+00:00")
    slots = [(rule, start)]

    async def run() -> tuple:
        async def seed(rule: Rule, start) -> Decimal:
            return Decimal(0)

        assert await shared_ledger.reserve("req-1", slots, Decimal("0.5"), seed) is None
        first = await shared_ledger.settle("req-1", slots, Decimal("0.2"))
        second = await shared_ledger.settle("req-1", slots, Decimal("0.2"))
        refused = await shared_ledger.reserve("req-2", slots, Decimal("0.9"), seed)
        return first, second, refused

    first, second, refused = asyncio.run(run())
    assert first == [Decimal("0.2")]
    assert second == [None]
    assert refused[0] == rule and refused[1] == Decimal("0.2")


def test_with_redis_down_budgets_fail_closed_by_default_and_open_when_asked(
    gateway, token, settings, caplog
):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    shared_ledger.reset()
    team_cap(Decimal("100"))
    closed = call(gateway, token)
    assert closed.status_code == 503
    assert "budget store (Redis) is not answering" in closed.json()["error"]["message"]
    assert "REDIS UNAVAILABLE" in caplog.text
    openai_shape = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {token}"},
        json={"model": "haiku", "max_tokens": 16, "messages": [{"role": "user", "content": "x"}]},
    )
    error = openai_shape.json()["error"]
    assert openai_shape.status_code == 503
    assert error["code"] == "budget_store_unavailable"
    assert "METIS_REDIS_FAILURE=closed" in error["message"]
    settings.METIS_REDIS_FAILURE = "open"
    assert call(gateway, token).status_code == 200
    shared_ledger.reset()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def metis(env: dict, *args: str) -> str:
    command = [sys.executable, "-m", "metis_site.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout


@pytest.mark.skipif(
    bool(os.environ.get("DATABASE_URL")), reason="the two gateways share a SQLite METIS_HOME"
)
def test_two_gateway_processes_sharing_one_budget_never_pass_its_cap(tmp_path: Path):
    empty_redis()
    with MockProviderThread() as provider:
        env = {**os.environ, "METIS_HOME": str(tmp_path), "REDIS_URL": REDIS_URL,
               "METIS_ANTHROPIC_BASE_URL": provider.url, "METIS_ANTHROPIC_API_KEY": "sk-x",
               "METIS_LOG_LEVEL": "WARNING"}  # fmt: skip
        env.pop("DATABASE_URL", None)
        metis(env, "gateway", "list-keys")  # creates and migrates the database
        cap = worst_case() * 10
        metis(env, "manage", "shell", "-c",
              "from identity.models import Team, Quota; t = Team.objects.create(name='eng'); "
              f"Quota.objects.create(team=t, period='day', hard_cap_usd='{cap}')")  # fmt: skip
        issued = metis(env, "gateway", "issue-key", "--name", "shared", "--workspace",
                       str(tmp_path), "--team", "eng")  # fmt: skip
        token = issued.split("token: ")[1].split()[0]
        ports = [free_port(), free_port()]
        gateways = [
            subprocess.Popen([sys.executable, "-m", "metis_site.cli", "gateway", "--port", str(p)],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for p in ports
        ]  # fmt: skip
        try:
            for port in ports:
                deadline = time.monotonic() + 30
                while True:
                    try:
                        httpx.get(f"http://127.0.0.1:{port}/healthz")
                        break
                    except httpx.TransportError:
                        assert time.monotonic() < deadline, "a gateway did not start"
                        time.sleep(0.1)

            async def waves() -> list[int]:
                # Waves, not one burst: alone, each process would go on admitting calls
                # until its own view of the spend reached the cap, twice the cap in all.
                headers = {"x-api-key": token, "anthropic-version": "2023-06-01"}
                statuses: list[int] = []
                async with httpx.AsyncClient(timeout=60) as client:
                    for _ in range(8):
                        responses = await asyncio.gather(*(
                            client.post(f"http://127.0.0.1:{ports[i % 2]}/v1/messages",
                                        headers=headers, content=RAW)
                            for i in range(40)
                        ))  # fmt: skip
                        statuses += [r.status_code for r in responses]
                return statuses

            statuses = asyncio.run(waves())
        finally:
            for process in gateways:
                process.send_signal(signal.SIGTERM)
                process.wait(60)
    assert set(statuses) == {200, 429}
    database = sqlite3.connect(tmp_path / "metis.db")
    (units,) = database.execute(  # exact: money is stored in integer 1e-10 USD units
        "SELECT sum(cost_usd) FROM analytics_call WHERE status = 200"
    ).fetchone()
    assert 0 < Decimal(units) * Decimal("1e-10") <= cap


def database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER'] or 'postgres'}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


def test_a_revocation_in_another_process_reaches_the_gateway_at_once(
    shared_budgets, gateway, token, settings
):
    settings.METIS_KEY_CACHE_SECONDS = 600  # nothing expires: only the published change helps
    assert call(gateway, token).status_code == 200
    key = GatewayKey.objects.get(name="alice-laptop")
    env = {**os.environ, "DATABASE_URL": database_url(), "REDIS_URL": REDIS_URL}
    metis(env, "gateway", "revoke-key", key.id)
    deadline = time.monotonic() + 5
    while (status := call(gateway, token).status_code) == 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert status == 401


def test_a_spent_budget_in_redis_refuses_even_a_call_that_costs_nothing(
    gateway, token, shared_budgets
):
    team_cap(Decimal("0"))
    counted = httpx.post(
        f"{gateway.url}/v1/messages/count_tokens",
        headers={"x-api-key": token, "anthropic-version": "2023-06-01"},
        json={"model": "haiku", "messages": [{"role": "user", "content": "Say hello"}]},
    )
    assert counted.status_code == 429
    assert counted.headers["x-should-retry"] == "false"
    assert "hard cap of $0.00" in counted.json()["error"]["message"]
    assert gateway.upstream_requests() == []
