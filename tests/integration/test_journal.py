"""The call journal in a running gateway: what a crash at a given moment would leave
(the journal's files copied as they are, which is what kill -9 leaves on disk), and what
the next start makes of it."""

from __future__ import annotations

import asyncio
import shutil
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import redis

from analytics.writer import EventWriter, make_event
from gateway import budgets, recovery
from gateway.budgets import Rule, shared_ledger
from gateway.journal import Journal, journal, read
from identity.models import Quota, Team
from tests.integration.test_quota_redis import REDIS_URL, shared_budgets  # noqa: F401

HANGING_STREAM = {
    "model": "claude-haiku-4-5",
    "max_tokens": 64,
    "stream": True,
    "messages": [{"role": "user", "content": "tell me a story [[fault:hang]]"}],
}


def records_of(label: str) -> list[dict]:
    found = [r for path in journal.files() for r in read(path)]
    ids = {r["id"] for r in found if r.get("k") == "s" and r["call"]["user"] == label}
    return [r for r in found if r.get("id") in ids]


def crash_copy(directory: Path) -> Path:
    """The journal's files as a dead process (pid 1) would have left them."""
    directory.mkdir()
    for path in journal.files():
        shutil.copy(path, directory / path.name.replace(journal.run, "1-CRASHED"))
    return directory


def stream_until_usage_is_journaled(gateway, token: str, label: str, then) -> None:
    """Open a stream that hangs after its first events, run `then()` once the journal
    holds its usage, then leave (the live call is then recorded as CANCELLED)."""
    headers = {"x-api-key": token, "x-metis-user": label}
    url = f"{gateway.url}/v1/messages"
    with httpx.stream("POST", url, headers=headers, json=HANGING_STREAM, timeout=30) as reply:
        assert reply.status_code == 200
        chunks = reply.iter_bytes()  # kept: a dropped iterator closes the response
        next(chunks)
        deadline = time.monotonic() + 10
        while not any(r["k"] == "u" and r["usage"][0] for r in records_of(label)):
            assert time.monotonic() < deadline, records_of(label)
            time.sleep(0.02)
        then()


def test_a_stream_cut_by_a_crash_is_recorded_with_what_it_had_seen(gateway, token, tmp_path):
    copies = tmp_path / "crashed"
    stream_until_usage_is_journaled(gateway, token, "cut", lambda: crash_copy(copies))
    found = recovery.recover(copies, journal)
    assert found.stopped == 1
    assert not list(copies.glob("*.log"))
    calls = [e for e in gateway.events("llm.call_completed") if e["user"] == "cut"]
    live = next(e for e in calls if e["error_class"] == "CANCELLED")
    stopped = next(e for e in calls if e["error_class"] == "GATEWAY_STOPPED")
    assert stopped["request_id"] == live["request_id"]  # (a live process never has both)
    assert stopped["status"] == 200  # the stream had begun
    assert stopped["input_tokens"] == live["input_tokens"] > 0  # as message_start said
    assert Decimal(str(stopped["cost_usd"])) > 0
    turns = [e for e in gateway.events("turn.completed") if e["user"] == "cut"]
    assert sorted(e["error_class"] for e in turns) == ["CANCELLED", "GATEWAY_STOPPED"]


@pytest.mark.redis
def test_a_crashed_calls_budget_hold_in_redis_is_settled_at_its_recovered_cost(
    gateway,
    token,
    tmp_path,
    shared_budgets,  # noqa: F811
):
    Quota.objects.create(team=Team.objects.get(name="eng"), period="day", hard_cap_usd=100)
    copies, keys = tmp_path / "crashed", []

    def crash_and_recover() -> None:
        crash_copy(copies)
        (started,) = [r for r in records_of("held") if r["k"] == "s"]
        ((scope, scope_id, start),) = started["hold"]["slots"]
        rule = Rule(scope, scope_id, "day", None, None, None, None)
        spent_key, held_key = shared_ledger.keys_for(rule, datetime.fromisoformat(start))
        store = redis.Redis.from_url(REDIS_URL)
        assert store.hexists(held_key, started["id"])  # the call's worst case is held
        found = recovery.recover(copies, journal)
        asyncio.run(budgets.release(found.holds))
        assert not store.hexists(held_key, started["id"])
        ((_, _, cost),) = found.holds
        assert int(store.get(spent_key)) == shared_ledger.units(cost) > 0
        keys.append(spent_key)

    stream_until_usage_is_journaled(gateway, token, "held", crash_and_recover)
    gateway.events()  # the live call settles too when the client leaves: not counted twice
    stopped = next(
        e for e in gateway.events("llm.call_completed") if e["error_class"] == "GATEWAY_STOPPED"
    )
    spent = int(redis.Redis.from_url(REDIS_URL).get(keys[0]))
    assert spent == shared_ledger.units(Decimal(str(stopped["cost_usd"])))


def test_journal_files_go_once_their_calls_are_finished_and_committed(
    transactional_db, settings, tmp_path
):
    settings.METIS_HOME = tmp_path
    events = EventWriter()
    mine = Journal(events, rotate_records=4)

    def call(n: int) -> None:
        mine.started(f"metis_{n}", {"k": "s", "id": f"metis_{n}"})
        mine.finished(f"metis_{n}", [make_event("test.event", {"n": n})])

    mine.started("metis_open", {"k": "s", "id": "metis_open"})
    for n in range(12):
        call(n)
    assert events.flush()
    call(12)
    assert len(mine.files()) >= 3, "the open call keeps its file, and every later one"
    mine.finished("metis_open", [make_event("test.event", {"n": "open"})])
    assert events.flush()
    call(13)
    assert len(mine.files()) == 1  # the one being written
    assert all(path.stat().st_mode & 0o777 == 0o600 for path in mine.files())
    mine.close()
    assert not list((tmp_path / "journal").iterdir())


def test_a_call_open_for_long_is_carried_forward_and_its_old_files_go(
    transactional_db, settings, tmp_path
):
    settings.METIS_HOME = tmp_path
    events = EventWriter()
    mine = Journal(events, rotate_records=2, carry_seconds=0)
    mine.started("metis_long", {"k": "s", "id": "metis_long", "n": 1})
    mine.progress("metis_long", {"k": "u", "id": "metis_long", "n": 2})
    for n in range(8):
        mine.started(f"metis_{n}", {"k": "s", "id": f"metis_{n}"})
        mine.finished(f"metis_{n}", [make_event("test.event", {"n": n})])
        assert events.flush()
    assert len(mine.files()) <= 2
    kept = [(r["k"], r.get("n")) for p in mine.files() for r in read(p) if r["id"] == "metis_long"]
    assert kept[-2:] == [("s", 1), ("u", 2)]  # the long call's start and its latest progress
    mine.finished("metis_long", [make_event("test.event", {"n": "long"})])
    mine.close()
    assert not list((tmp_path / "journal").iterdir())
