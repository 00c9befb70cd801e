"""The writer process of `metis gateway` (gateway/writer_process.py): killed with -9 in the
middle of a batch it is restarted and writes every call once; it dies with its gateway,
and the next start recovers the dead gateway's journal while its own writer reads it;
events reach the database while the gateway runs, not only at its stop."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import time
from pathlib import Path

import httpx
import orjson
import pytest
from django.conf import settings

from analytics.writer import make_event
from gateway.writer_process import Tailer
from mock_provider import MockProviderThread
from tests.integration.gateway_process import GatewayProcess, gateway_env, issue_key

SQLITE = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
sqlite_only = pytest.mark.skipif(not SQLITE, reason="the gateway subprocess writes its own SQLite")
CALLS = 40


def writer_of(gateway: GatewayProcess) -> int:
    """The pid of the gateway's writer process (its child running `write-events`)."""
    deadline = time.monotonic() + 60
    while True:
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
                command = (stat.parent / "cmdline").read_bytes()
            except (OSError, ValueError, IndexError):
                continue
            if ppid == gateway.process.pid and b"write-events" in command:
                return int(stat.parent.name)
        assert time.monotonic() < deadline, f"no writer process\n{gateway.output()}"
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(condition, what: str, gateway: GatewayProcess) -> None:
    deadline = time.monotonic() + 120  # a liveness bound for a loaded machine, not a timing
    while not condition():
        assert time.monotonic() < deadline, f"{what}\n{gateway.output()}"
        time.sleep(0.05)


async def fire(url: str, token: str, tag: str, count: int) -> list[int]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        replies = await asyncio.gather(*(
            client.post("/v1/messages", headers={"x-api-key": token, "x-metis-user": tag},
                        json={"model": "claude-haiku-4-5", "max_tokens": 16, "stream": i % 2 == 0,
                              "messages": [{"role": "user", "content": f"{tag} {i}"}]})
            for i in range(count)
        ))  # fmt: skip
    return [r.status_code for r in replies]


def recorded(db: Path) -> dict[str, int]:
    """Events per type, `Call` rows, and the calls the hourly rollup has summed."""
    with sqlite3.connect(db) as conn:
        counts = dict(conn.execute("SELECT type, count(*) FROM events GROUP BY type").fetchall())
        counts["calls"] = conn.execute("SELECT count(*) FROM analytics_call").fetchone()[0]
        counts["rolled up"] = conn.execute(
            "SELECT coalesce(sum(calls), 0) FROM analytics_callhour"
        ).fetchone()[0]
    return counts


def expected(calls: int) -> dict[str, int]:
    return {"route.decided": calls, "llm.call_completed": calls, "turn.completed": calls,
            "calls": calls, "rolled up": calls}  # fmt: skip


@sqlite_only
def test_a_writer_killed_in_the_middle_of_a_batch_is_restarted_and_writes_every_call_once(
    tmp_path,
):
    with MockProviderThread() as mock:
        env = {**gateway_env(tmp_path, mock.url), "METIS_SQLITE_BUSY_TIMEOUT": "1"}
        token = issue_key(env)
        gateway = GatewayProcess(env)
        try:
            assert asyncio.run(fire(gateway.url, token, "before", CALLS)) == [200] * CALLS
            first = writer_of(gateway)
            # The database locked: the writer's transaction fails and is retried, batch held.
            locker = sqlite3.connect(tmp_path / "metis.db", isolation_level=None)
            locker.execute("BEGIN EXCLUSIVE")
            try:
                assert asyncio.run(fire(gateway.url, token, "during", CALLS)) == [200] * CALLS
                wait_for(lambda: "event write failed" in gateway.output(),
                         "the writer never met the locked database", gateway)  # fmt: skip
                os.kill(first, signal.SIGKILL)
                wait_for(lambda: writer_of(gateway) != first, "no new writer", gateway)
            finally:
                locker.execute("COMMIT")
                locker.close()
            assert asyncio.run(fire(gateway.url, token, "after", CALLS)) == [200] * CALLS
        finally:
            assert gateway.stop() == 0, gateway.output()
    assert "restarting it" in gateway.output()
    assert recorded(tmp_path / "metis.db") == expected(3 * CALLS)
    assert not list((tmp_path / "journal").iterdir()), "a clean stop leaves no call journal"


@sqlite_only
def test_the_writer_dies_with_its_gateway_and_the_next_start_recovers_beside_its_own(tmp_path):
    with MockProviderThread() as mock:
        env = gateway_env(tmp_path, mock.url)
        token = issue_key(env)
        gateway = GatewayProcess(env)
        writer = writer_of(gateway)
        assert asyncio.run(fire(gateway.url, token, "dead", CALLS)) == [200] * CALLS
        gateway.kill()
        wait_for(lambda: not alive(writer), "the writer outlived its gateway", gateway)
        assert list((tmp_path / "journal").glob("*.log")), "the dead gateway left no journal"
        # Its writer reads the dead files while the start recovers them: nothing twice.
        restarted = GatewayProcess(env)
        assert asyncio.run(fire(restarted.url, token, "alive", CALLS)) == [200] * CALLS
        assert restarted.stop() == 0, restarted.output()
    assert recorded(tmp_path / "metis.db") == expected(2 * CALLS)
    assert not list((tmp_path / "journal").iterdir())


@sqlite_only
def test_events_and_a_previous_stops_spool_reach_the_database_while_the_gateway_runs(tmp_path):
    with MockProviderThread() as mock:
        env = gateway_env(tmp_path, mock.url)
        token = issue_key(env)
        spooled = [make_event("test.event", {"n": n}) for n in range(3)]
        (tmp_path / "spool").mkdir()
        (tmp_path / "spool" / "events-1.jsonl").write_bytes(b"\n".join(map(orjson.dumps, spooled)))
        gateway = GatewayProcess(env)
        try:
            assert asyncio.run(fire(gateway.url, token, "live", 5)) == [200] * 5
            answered = time.monotonic()
            wait_for(lambda: {**expected(5), "test.event": 3} == recorded(tmp_path / "metis.db"),
                     "the events were not written while the gateway ran", gateway)  # fmt: skip
            print(f"written {time.monotonic() - answered:.2f} s after the last answer")
            assert not list((tmp_path / "spool").glob("events-*.jsonl"))
        finally:
            assert gateway.stop() == 0, gateway.output()


def test_the_tailer_reads_complete_lines_only_and_each_event_once(tmp_path):
    def line(request_id: str, events: list) -> bytes:
        return orjson.dumps({"k": "f", "id": request_id, "events": events}) + b"\n"

    one, two, three = (make_event("test.event", {"n": n}) for n in range(3))
    path = tmp_path / "123-RUN-000001.log"
    whole = line("a", [one]) + b'{"k":"s","id":"b"}\n' + line("b", [two]) + line("again", [one])
    last = line("c", [three])
    path.write_bytes(whole + last[:10])  # the gateway is writing its last line
    tailer = Tailer(tmp_path)
    events, offsets = tailer.read()
    assert [e.id for e in events] == [one.id, two.id]
    assert offsets == {path.name: len(whole)}
    tailer.offsets = offsets  # as commit() does once they are in
    with path.open("ab") as file:
        file.write(last[10:])
    events, offsets = tailer.read()
    assert [e.id for e in events] == [three.id]
    assert offsets == {path.name: len(whole) + len(last)}


@sqlite_only
def test_a_journal_that_cannot_be_written_loses_no_event(tmp_path):
    (tmp_path / "journal").write_text("a file where the journal's directory should be")
    with MockProviderThread() as mock:
        env = gateway_env(tmp_path, mock.url)
        token = issue_key(env)
        gateway = GatewayProcess(env)
        try:
            assert asyncio.run(fire(gateway.url, token, "unjournaled", CALLS)) == [200] * CALLS
        finally:
            assert gateway.stop() == 0, gateway.output()
    assert "cannot write the call journal" in gateway.output()
    assert "restarting it" not in gateway.output(), "the writer process died without a journal"
    assert recorded(tmp_path / "metis.db") == expected(CALLS)
