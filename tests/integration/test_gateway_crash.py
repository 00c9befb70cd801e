"""kill -9 of a real `metis gateway` under load loses no call: every answer a client got
in full has its event, and every call in flight when the process died is recorded by the
next start as GATEWAY_STOPPED (gateway/journal.py)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import defaultdict
from pathlib import Path

import orjson
import pytest
from django.conf import settings

from mock_provider import MockProviderThread
from tests.integration.gateway_process import GatewayProcess, Load, gateway_env, issue_key

SQLITE = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
CLIENTS = 48
ANSWERS = 200  # complete answers before the kill


def calls_by_label(db: Path) -> tuple[dict[str, list[dict]], dict[str, int]]:
    """The llm.call_completed payloads per x-metis-user label, and the count of each type."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT payload_json FROM events WHERE type = 'llm.call_completed'"
        ).fetchall()
        counts = dict(conn.execute("SELECT type, count(*) FROM events GROUP BY type").fetchall())
    calls: dict[str, list[dict]] = defaultdict(list)
    for (payload,) in rows:
        call = orjson.loads(payload)
        calls[call["user"]].append(call)
    return calls, counts


@pytest.mark.skipif(not SQLITE, reason="the gateway subprocess writes its own SQLite database")
def test_kill_9_under_load_loses_no_call_and_records_the_calls_in_flight(tmp_path):
    with MockProviderThread(token_delay=0.02) as mock:
        env = gateway_env(tmp_path, mock.url)
        token = issue_key(env)
        gateway = GatewayProcess(env)
        load = Load(gateway.url, token)
        asyncio.run(load.run(clients=CLIENTS, answers=ANSWERS, during=gateway.kill))
        assert gateway.process.returncode == -9
        dead = {path.name: path.read_bytes() for path in (tmp_path / "journal").glob("*.log")}
        restarted = GatewayProcess(env)  # recovers the dead gateway's journal as it starts
        assert restarted.stop() == 0, restarted.output()
        calls, counts = calls_by_label(tmp_path / "metis.db")
        journal_left = list((tmp_path / "journal").glob("*.log"))
        # A crash during recovery, before the dead files were deleted: the next start
        # recovers them again, and records nothing twice.
        for name, content in dead.items():
            (tmp_path / "journal" / name).write_bytes(content)
        again = GatewayProcess(env)
        assert again.stop() == 0, again.output()
        recovered_twice = calls_by_label(tmp_path / "metis.db")

    answered = [o for o in load.outcomes if o.complete and o.status == 200]
    accepted = [o for o in load.outcomes if o.status is not None]
    lost_answered = [o.label for o in answered if not calls.get(o.label)]
    lost_accepted = [o.label for o in accepted if not calls.get(o.label)]
    stopped = [
        c for found in calls.values() for c in found if c["error_class"] == "GATEWAY_STOPPED"
    ]
    figures = (
        f"{len(answered)} answers received in full, {len(accepted)} calls accepted, "
        f"{len(lost_answered)} answered calls lost, {len(lost_accepted)} accepted calls lost, "
        f"{len(stopped)} recorded as GATEWAY_STOPPED"
    )  # fmt: skip
    print(figures)
    assert len(answered) >= ANSWERS, figures
    assert not lost_answered, figures
    assert not lost_accepted, figures
    assert all(len(found) == 1 for found in calls.values()), "a call was recorded twice"
    for outcome in answered:
        (call,) = calls[outcome.label]
        assert (call["status"], call["error_class"]) == (200, None), call
    assert stopped, "no call was in flight when the gateway died: the test proves nothing"
    unanswered = {o.label: o for o in load.outcomes if not o.complete}
    for call in stopped:  # what the dead process had seen of each, priced
        assert call["user"] in unanswered
        seen_by_client = unanswered[call["user"]].status
        assert call["status"] == 200 if seen_by_client == 200 else call["status"] in (0, 200)
        assert call["input_tokens"] > 0 and call["cost_usd"] is not None, call
    assert counts["route.decided"] == counts["turn.completed"] == counts["llm.call_completed"]
    assert not journal_left, "a recovered journal was kept"
    assert recovered_twice == (calls, counts)
