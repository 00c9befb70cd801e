"""PostgreSQL goes away under traffic (a restart, then a stop of a few seconds): a real
`metis gateway` keeps answering with the keys it has cached, holds its events until the
database is back, and loses none of them."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Iterator

import httpx
import orjson
import psycopg
import pytest

from mock_provider import MockProviderThread
from tests.integration.gateway_process import GatewayProcess, Load, gateway_env, issue_key
from tests.integration.postgres_server import PostgresServer

pytestmark = pytest.mark.postgres
CLIENTS = 16
BODY = {
    "model": "claude-haiku-4-5",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "hi"}],
}


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    yield server
    server.close()


def calls_by_label(url: str) -> dict[str, list[dict]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT payload_json FROM events WHERE type = 'llm.call_completed'"
        ).fetchall()
    calls: dict[str, list[dict]] = defaultdict(list)
    for (payload,) in rows:
        call = orjson.loads(payload)
        calls[call["user"]].append(call)
    return calls


def test_a_postgresql_restart_under_traffic_loses_no_call_and_the_gateway_keeps_serving(
    tmp_path, postgres
):
    answered_while: dict[str, int] = {}
    unseen_key: list[httpx.Response] = []

    def outage() -> None:
        postgres.restart()
        time.sleep(2)
        postgres.stop()
        answered_while["down"] = load.answered()
        time.sleep(2)  # longer than the key cache's lifetime
        unseen_key.append(httpx.post(f"{gateway.url}/v1/messages", timeout=30, json=BODY,
                                     headers={"x-api-key": other_token}))  # fmt: skip
        time.sleep(2)
        answered_while["back"] = load.answered()
        postgres.start()
        time.sleep(3)

    with MockProviderThread(token_delay=0.005) as mock:
        env = gateway_env(tmp_path, mock.url, database_url=postgres.url)
        token, other_token = issue_key(env), issue_key(env, "never-used")
        gateway = GatewayProcess(env)
        load = Load(gateway.url, token)
        asyncio.run(load.run(clients=CLIENTS, answers=100, during=outage))
        assert gateway.stop() == 0, gateway.output()

    calls = calls_by_label(postgres.url)
    answers = [o for o in load.outcomes if o.status is not None]
    assert answers and all(o.status == 200 for o in answers), {o.status for o in answers}
    assert answered_while["back"] - answered_while["down"] > CLIENTS, "it stopped serving"
    lost = [o.label for o in answers if not calls.get(o.label)]
    assert not lost, f"{len(lost)} of {len(answers)} answered calls have no event"
    assert all(len(found) == 1 for found in calls.values()), "a call was recorded twice"
    assert not list((tmp_path / "spool").glob("*")), "events were spooled or set aside"
    assert "event write failed" in gateway.output()  # the outage was real, and retried
    # A key this gateway never loaded cannot be checked while the database is away.
    (refused,) = unseen_key
    assert refused.status_code == 503
    assert refused.json()["error"]["type"] == "api_error"
    assert "cannot reach its database" in refused.json()["error"]["message"]
