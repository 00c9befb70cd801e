"""The event writer loses no accepted event: not on SIGTERM or Ctrl-C, not while the
database is briefly locked, not when the database is gone at shutdown (spool)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest
from django.conf import settings
from django.db import OperationalError, connection

from analytics.models import Event
from analytics.writer import Clock, EventWriter, make_event
from mock_provider import MockProviderThread

SQLITE = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
sqlite_only = pytest.mark.skipif(
    not SQLITE,
    reason="a real `metis gateway` subprocess writes to its own METIS_HOME/metis.db; "
    "this proof is about SQLite (DATABASE_URL points at another database)",
)
REQUESTS = 300


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def gateway_env(home: Path, mock_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(
        METIS_HOME=str(home),
        METIS_ANTHROPIC_BASE_URL=mock_url,
        METIS_ANTHROPIC_API_KEY="x",
        METIS_LOG_LEVEL="WARNING",
    )
    return env


def issue_key(env: dict[str, str]) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "metis_site.cli", "gateway", "issue-key",
         "--name", "shutdown-test", "--workspace", "/srv/shutdown"],
        env=env, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return next(
        line.split(": ", 1)[1] for line in out.stdout.splitlines() if line.startswith("token:")
    )


def start_gateway(env: dict[str, str], port: int) -> subprocess.Popen:
    # To a file, not a pipe nobody reads: the access log's line per call would fill it.
    log = Path(env["METIS_HOME"]) / f"gateway-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "metis_site.cli", "gateway", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, log.read_text(errors="replace")
        assert time.monotonic() < deadline, "the gateway did not start"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.05)


async def fire(url: str, token: str, count: int) -> list[int]:
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        replies = await asyncio.gather(*(
            client.post("/v1/messages", headers={"x-api-key": token}, json={
                "model": "claude-haiku-4-5", "max_tokens": 16,
                "messages": [{"role": "user", "content": f"request {i}"}],
            })
            for i in range(count)
        ))  # fmt: skip
    return [r.status_code for r in replies]


def count_events(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT type, count(*) FROM events GROUP BY type").fetchall()
    return dict(rows)


def run_and_stop(tmp_path: Path, stop: signal.Signals) -> tuple[int, dict[str, int], list[int]]:
    with MockProviderThread() as mock:
        env = gateway_env(tmp_path, mock.url)
        token = issue_key(env)
        port = free_port()
        process = start_gateway(env, port)
        try:
            statuses = asyncio.run(fire(f"http://127.0.0.1:{port}", token, REQUESTS))
            process.send_signal(stop)  # right after the last response
            returncode = process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
    return returncode, count_events(tmp_path / "metis.db"), statuses


@sqlite_only
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_no_accepted_event_is_lost_when_the_gateway_is_stopped(tmp_path, stop):
    returncode, counts, statuses = run_and_stop(tmp_path, stop)
    assert statuses == [200] * REQUESTS
    assert returncode == 0
    assert sum(counts.values()) == 3 * REQUESTS
    assert counts["llm.call_completed"] == REQUESTS
    assert counts["route.decided"] == counts["turn.completed"] == REQUESTS
    assert not list((tmp_path / "spool").glob("*.jsonl"))
    assert not list((tmp_path / "journal").iterdir()), "a clean stop leaves no call journal"


def events(count: int, tag: str) -> list:
    return [make_event("test.event", {"tag": tag, "n": n}) for n in range(count)]


def stored(tag: str) -> int:
    return Event.objects.filter(type="test.event", payload_json__contains=f'"{tag}"').count()


@pytest.mark.skipif(not SQLITE, reason="locks the SQLite test database file directly")
def test_events_submitted_while_the_database_is_locked_are_written_after_it_is_released(
    transactional_db, monkeypatch, caplog
):
    # A short busy timeout, so the writer really meets "database is locked" and must retry.
    monkeypatch.setitem(connection.settings_dict["OPTIONS"], "timeout", 0.05)
    locker = sqlite3.connect(settings.DATABASES["default"]["NAME"], isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    writer = EventWriter()
    try:
        with caplog.at_level(logging.WARNING, logger="analytics.writer"):
            for _ in range(10):
                writer.submit(events(50, "locked"))
                time.sleep(0.15)
            locker.execute("COMMIT")
            assert writer.flush(timeout=15)
    finally:
        locker.close()
        writer.close()
    assert stored("locked") == 500
    assert "event write failed" in caplog.text


def test_events_the_database_refuses_at_shutdown_are_spooled_and_loaded_by_the_next_writer(
    transactional_db, settings, tmp_path, monkeypatch
):
    settings.METIS_HOME = tmp_path
    settings.METIS_EVENT_SHUTDOWN_SECONDS = 0.3
    already = events(5, "spooled")
    earlier = EventWriter()  # a spooled batch may have partly landed before
    earlier.submit(already[:2])
    assert earlier.flush()
    earlier.close()
    refused = EventWriter(linger=0.05)
    with monkeypatch.context() as patch:

        def unavailable(*args, **kwargs):
            raise OperationalError("database is unavailable")

        # Fails inside the writer's transaction, after the insert: the insert rolls back.
        patch.setattr("analytics.writer.touch_keys", unavailable)
        refused.submit(already)
        refused.submit(events(5, "spooled-late"))
        refused.close()
    # The thread that outlived its grace stops at its next attempt, and writes nothing
    # more now that the database would take it: its batch is in the spool.
    refused._thread.join(timeout=5)
    assert not refused._thread.is_alive()
    spooled = list((tmp_path / "spool").glob("events-*.jsonl"))
    lines = [orjson.loads(line) for f in spooled for line in f.read_bytes().splitlines()]
    assert {e["id"] for e in lines} >= {e.id for e in already}
    assert len({e["id"] for e in lines}) == 10

    assert stored("spooled") == 2
    next_writer = EventWriter()
    next_writer.submit([])
    assert next_writer.flush()
    next_writer.close()
    assert stored("spooled") == 5
    assert stored("spooled-late") == 5
    assert not list((tmp_path / "spool").glob("*.jsonl"))


def test_an_event_the_database_refuses_is_set_aside_and_holds_back_nothing(
    transactional_db, settings, tmp_path, caplog
):
    settings.METIS_HOME = tmp_path
    # More tokens than a 64-bit column holds: SQLite's driver and PostgreSQL both refuse it.
    refused = make_event("llm.call_completed", {"model": "haiku", "input_tokens": 2**63})
    writer = EventWriter()
    with caplog.at_level(logging.ERROR, logger="analytics.writer"):
        writer.submit([*events(7, "around"), refused, *events(8, "around")])
        assert writer.flush(timeout=15)
        writer.submit(events(5, "after"))
        assert writer.flush(timeout=15)
    writer.close()
    assert stored("around") == 15
    assert stored("after") == 5
    assert not Event.objects.filter(id=refused.id).exists()
    kept = (tmp_path / "spool" / "refused.jsonl").read_bytes().splitlines()
    assert [orjson.loads(line)["id"] for line in kept] == [refused.id]
    assert f"the database refused event {refused.id}" in caplog.text
    assert not list((tmp_path / "spool").glob("events-*.jsonl"))  # not loaded again


def test_clock_ticks_from_many_threads_are_unique_and_strictly_increasing():
    clock, ticks, lock = Clock(), [], threading.Lock()

    def tick_many() -> None:
        mine = [clock.tick() for _ in range(1250)]
        with lock:
            ticks.extend(mine)

    threads = [threading.Thread(target=tick_many) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ticks) == 10_000
    assert len({ulid for ulid, _ in ticks}) == 10_000
    in_id_order = sorted(ticks)
    assert all(a[0] < b[0] for a, b in itertools.pairwise(in_id_order))
    assert all(a[1] < b[1] for a, b in itertools.pairwise(in_id_order))
