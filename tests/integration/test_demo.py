"""`metis demo`, run as a user runs it, into a fresh SQLite METIS_HOME.

It needs no database fixture: the command's own processes write `METIS_HOME/metis.db`,
which the test reads with sqlite3, so it runs the same whatever DATABASE_URL the suite uses.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ulid import ULID

from metis_site.demo import FINE_TUNED, MEMBERS, TEAMS

REPO = Path(__file__).resolve().parents[2]
CALLS = 100  # enough to reach every weekday of the month the demo spreads them over


def demo(home: Path) -> str:
    """Run `metis demo --calls CALLS`; fail if it, or the gateway it starts, outlives it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METIS_", "DATABASE_URL"))}
    env.pop("REDIS_URL", None)  # a fresh machine: SQLite in METIS_HOME, no Redis
    env["METIS_HOME"] = str(home)
    command = [sys.executable, "-m", "metis_site.cli", "demo", "--calls", str(CALLS)]
    # Its own process group, so whatever it started can be found (and ended) afterwards.
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        out, err = process.communicate(timeout=120)
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
            left_behind = True
        except ProcessLookupError:
            left_behind = False
        process.wait()
    assert not left_behind, "metis demo left a process running"
    assert process.returncode == 0, err
    return out


def query(home: Path, sql: str) -> list[tuple]:
    with closing(sqlite3.connect(home / "metis.db")) as db:
        return db.execute(sql).fetchall()


def count(home: Path, table: str, where: str = "1 = 1") -> int:
    return query(home, f"SELECT COUNT(*) FROM {table} WHERE {where}")[0][0]


def test_demo_fills_a_fresh_home_and_adds_as_many_calls_when_run_again(tmp_path) -> None:
    home = tmp_path / "metis-home"

    out = demo(home)

    lines = out.splitlines()
    assert len(lines) == 6, out
    assert lines[0] == (
        "metis demo: teams eng, sales, research; users alice, bob, carol, dave, erin; 6 keys"
    )
    assert re.fullmatch(
        r"metis demo: gateway on http://127\.0\.0\.1:\d+, mock provider on .+", lines[1]
    )
    sent = re.fullmatch(
        rf"metis demo: sent {CALLS} calls in \d+ s \((.+)\), over the past 30 days", lines[2]
    )
    assert sent, lines[2]
    # Reconciled against the mock's own reports: its direct calls are bypass, the rest is 0.
    anthropic = re.fullmatch(
        r"metis demo: reconciled anthropic against the mock's reports: Metis \$([\d.]+), "
        r"provider \$([\d.]+), drift \$([\d.]+); bypass (\d+) tokens, unreported 0 tokens",
        lines[3],
    )
    assert anthropic and int(anthropic[4]) > 0 and float(anthropic[3]) > 0, lines[3]
    assert re.fullmatch(
        r"metis demo: reconciled openai against the mock's reports: Metis \$([\d.]+), "
        r"provider \$\1, drift \$0\.000000; bypass 0 tokens, unreported 0 tokens",
        lines[4],
    ), lines[4]
    assert count(home, "events", "type = 'reconciliation.bypass'") == 1  # one model, one day
    assert lines[5] == "open http://127.0.0.1:8421/dashboard/ (run: uv run metis serve)"
    # The printed statuses are the ones the gateway recorded; no call failed to arrive.
    printed = {int(status): int(n) for n, status in re.findall(r"(\d+)× (\d+)", sent[1])}
    assert "failed" not in sent[1]
    assert printed == dict(query(home, "SELECT status, COUNT(*) FROM analytics_call GROUP BY 1"))
    assert printed[200] >= CALLS * 0.9

    assert query(home, "SELECT name FROM identity_team ORDER BY name") == [
        ("eng",), ("research",), ("sales",)
    ]  # fmt: skip
    assert sorted(query(home, "SELECT username FROM identity_user")) == [
        (u,) for u in sorted(MEMBERS)
    ]
    owners = query(
        home,
        "SELECT t.name, u.username FROM identity_teammembership m "
        "JOIN identity_team t ON t.id = m.team_id JOIN identity_user u ON u.id = m.user_id "
        "WHERE m.role = 'budget_owner'",
    )
    assert dict(owners) == TEAMS
    live_keys_sql = "SELECT id FROM identity_gatewaykey WHERE revoked_at IS NULL"
    live_keys = {key for (key,) in query(home, live_keys_sql)}
    assert len(live_keys) == len(MEMBERS) + 1  # one per user, plus the agent key
    assert count(home, "events", "type = 'llm.call_completed'") == CALLS

    # Attributed and priced (but for a fine-tuned model, which has no list price), so every
    # dashboard panel has something to show.
    assert count(home, "analytics_call") == CALLS
    unpriced = count(home, "analytics_call", "cost_usd IS NULL")
    assert 0 < unpriced == count(home, "analytics_call", f"model = '{FINE_TUNED}'")
    called = {key for (key,) in query(home, "SELECT DISTINCT gateway_key_id FROM analytics_call")}
    assert called <= live_keys
    by_team = Counter(dict(query(home, "SELECT team, COUNT(*) FROM analytics_call GROUP BY 1")))
    assert set(TEAMS) <= set(by_team)
    assert by_team.most_common(1)[0][0] == "eng"  # the Top team the demo is weighted for
    assert query(home, "SELECT SUM(calls) FROM analytics_callhour") == [(CALLS,)]
    assert query(home, "SELECT SUM(calls) FROM analytics_callday") == [(CALLS,)]
    first_run = set(query(home, "SELECT id, timestamp FROM analytics_call"))
    assert_spread_over_the_past_month(home)

    demo(home)  # rerunnable: the same identities and keys (new tokens), N more calls

    assert count(home, "identity_team") == len(TEAMS)
    assert count(home, "identity_user") == len(MEMBERS)
    assert count(home, "identity_gatewaykey") == len(live_keys)
    assert {key for (key,) in query(home, live_keys_sql)} == live_keys
    assert count(home, "events", "type = 'llm.call_completed'") == 2 * CALLS
    assert count(home, "analytics_call") == 2 * CALLS
    assert count(home, "analytics_call", "status = 401") == 0  # the rotated tokens work
    assert query(home, "SELECT SUM(calls) FROM analytics_callhour") == [(2 * CALLS,)]
    assert query(home, "SELECT SUM(calls) FROM analytics_callday") == [(2 * CALLS,)]
    assert first_run <= set(query(home, "SELECT id, timestamp FROM analytics_call"))
    assert_spread_over_the_past_month(home)


def assert_spread_over_the_past_month(home: Path) -> None:
    """Calls on at least 20 days of the past 30, none in the future; each event's ULID
    and timestamp moved together, and a call's events stay together and in order."""
    now_us = time.time_ns() // 1000
    month_ago_us = now_us - int(timedelta(days=31).total_seconds() * 1e6)
    events = query(home, "SELECT id, type, timestamp_us, payload_json FROM events ORDER BY id")
    assert all(month_ago_us <= ts <= now_us for _, _, ts, _ in events)
    assert all(ULID.from_str(i).milliseconds == ts // 1000 for i, _, ts, _ in events)
    days = {
        datetime.fromtimestamp(ts / 1e6, tz=UTC).date()
        for _, kind, ts, _ in events
        if kind == "llm.call_completed"
    }
    assert len(days) >= 20
    by_call: dict[str, list[str]] = {}
    for _, kind, _, payload in events:
        if kind.startswith("reconciliation."):  # of the demo's reconciliation, not of a call
            continue
        by_call.setdefault(re.search(r'"request_id":"([^"]+)"', payload)[1], []).append(kind)
    assert set(map(tuple, by_call.values())) == {
        ("route.decided", "llm.call_completed", "turn.completed")
    }
    calls = query(home, "SELECT id, timestamp FROM analytics_call")
    assert {i for i, _ in calls} == {i for i, kind, _, _ in events if kind == "llm.call_completed"}
