"""A Redis that hangs (a real redis-server, stopped with SIGSTOP): after a few calls that
wait for its timeout, the gateway stops asking it until a cool-down has passed."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest
import redis

from gateway import budgets
from gateway.budgets import reservations, shared_ledger
from gateway.metrics import registry
from identity.models import Quota, Team
from tests.integration.test_quota import call

pytestmark = pytest.mark.redis
MISSING = "redis-server is not installed (apt-get install redis-server)"


@pytest.fixture
def own_redis() -> Iterator[tuple[str, subprocess.Popen]]:
    """A redis-server of this test's own, on a free port, without persistence."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail(f"{MISSING}; in CI it must be")
        pytest.skip(MISSING)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url, socket_timeout=1).ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    yield url, server
    server.send_signal(signal.SIGCONT)
    server.terminate()
    server.wait(10)


def sample(name: str) -> float:
    return registry.get_sample_value(name) or 0.0


@pytest.mark.parametrize(("policy", "answer"), [("closed", 503), ("open", 200)])
def test_a_hung_redis_is_asked_a_few_times_then_skipped_until_the_cool_down(
    gateway, token, settings, own_redis, policy, answer, caplog
):
    url, server = own_redis
    settings.REDIS_URL = url
    settings.METIS_REDIS_FAILURE = policy
    settings.METIS_REDIS_TIMEOUT = 0.3
    settings.METIS_REDIS_BREAKER_FAILURES = 2
    settings.METIS_REDIS_BREAKER_SECONDS = 3.0
    shared_ledger.reset()
    Quota.objects.create(team=Team.objects.get(name="eng"), period="day", hard_cap_usd=Decimal(1))
    assert call(gateway, token).status_code == 200  # through Redis
    deadline = time.monotonic() + 5
    while reservations._tasks:  # its settlement, in the background, must not meet the hang
        assert time.monotonic() < deadline, "the first call's settlement did not finish"
        time.sleep(0.01)

    server.send_signal(signal.SIGSTOP)
    failed, skipped = (
        sample("metis_budget_store_failures_total"),
        sample("metis_budget_store_skipped_total"),
    )
    during = [call(gateway, token) for _ in range(6)]
    assert [r.status_code for r in during] == [answer] * 6
    # Two calls waited for Redis' timeout; the other four were answered without asking it.
    assert sample("metis_budget_store_failures_total") - failed == 2
    assert sample("metis_budget_store_skipped_total") - skipped == 4
    assert sample("metis_budget_store_breaker_open") == 1
    if policy == "closed":
        error = during[-1].json()["error"]
        assert "budget store (Redis) is not answering" in error["message"]

    server.send_signal(signal.SIGCONT)
    time.sleep(settings.METIS_REDIS_BREAKER_SECONDS)  # the cool-down, not a timing assertion
    assert call(gateway, token).status_code == 200  # the probe: Redis answers again
    assert sample("metis_budget_store_breaker_open") == 0
    assert call(gateway, token).status_code == 200
    held = redis.Redis.from_url(url)
    spent = [key for key in held.scan_iter("metis:budget:team:eng:*:spent")]
    assert spent, "the calls after the hang were held in Redis"
    logged = [r.getMessage() for r in caplog.records if r.name == "gateway.budgets.shared_ledger"]
    assert sum("failures in a row" in line for line in logged) == 1
    assert sum("answers again" in line for line in logged) == 1


def test_a_redis_that_is_down_when_a_dead_gateways_holds_are_released_is_only_logged(
    settings, caplog
):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    shared_ledger.reset()
    hold = {"shared": True, "amount": "0.5", "slots": [["team", "eng", "2026-11-01T00:00:00"]]}
    asyncio.run(budgets.release([("req-dead", hold, Decimal("0.1"))]))  # does not raise
    assert any("REDIS UNAVAILABLE" in r.getMessage() for r in caplog.records)
    shared_ledger.reset()
