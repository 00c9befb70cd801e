"""`metis manage backup PATH` while a real gateway writes under load: the copy is whole,
and restored into a fresh METIS_HOME, `metis serve` shows the calls it holds."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from mock_provider import MockProviderThread
from tests.integration.gateway_process import GatewayProcess, Load, gateway_env, issue_key
from tests.integration.serve_process import start_serve

SQLITE = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"


def manage(env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "metis_site.cli", "manage", *arguments],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def completed_calls(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        query = "SELECT count(*) FROM events WHERE type = 'llm.call_completed'"
        return conn.execute(query).fetchone()[0]


@pytest.mark.skipif(not SQLITE, reason="the gateway subprocess writes its own SQLite database")
def test_a_backup_taken_under_load_restores_with_the_calls_up_to_it(tmp_path):
    home, backup = tmp_path / "home", tmp_path / "metis-backup.db"
    taken: dict[str, object] = {}
    with MockProviderThread(token_delay=0.01) as mock:
        env = gateway_env(home, mock.url)
        token = issue_key(env)
        gateway = GatewayProcess(env)
        load = Load(gateway.url, token)

        def take_backup() -> None:
            taken["answered_before"] = load.answered()
            taken["result"] = manage(env, "backup", str(backup))
            taken["answered_after"] = load.answered()

        try:
            asyncio.run(load.run(clients=16, answers=60, during=take_backup))
        finally:
            assert gateway.stop() == 0, gateway.output()
    result = taken["result"]
    assert result.returncode == 0, result.stderr
    assert "backed up" in result.stdout
    assert taken["answered_after"] > taken["answered_before"], "no traffic during the backup"

    with sqlite3.connect(backup) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    in_backup, in_live = completed_calls(backup), completed_calls(home / "metis.db")
    # Every call answered before the backup began is in it; calls after it are not.
    assert taken["answered_before"] <= in_backup < in_live

    restored = tmp_path / "restored"
    restored.mkdir()
    shutil.copy(backup, restored / "metis.db")
    serve = start_serve(restored, "serve")
    try:
        serve.wait_until_up(deadline=time.monotonic() + 60)
        totals = httpx.get(f"{serve.url}/analytics/cost?window=24h", timeout=30).json()
    finally:
        serve.stop()
    assert totals["totals"]["calls"] == in_backup, totals


def test_backup_refuses_a_path_that_exists(tmp_path):
    env = gateway_env(tmp_path / "home", "http://127.0.0.1:9")
    existing = tmp_path / "there.db"
    existing.write_bytes(b"keep me")
    result = manage(env, "backup", str(existing))
    assert result.returncode != 0
    assert "already exists" in result.stderr
    assert "Traceback" not in result.stderr
    assert existing.read_bytes() == b"keep me"


def test_backup_on_postgresql_points_to_pg_dump(tmp_path):
    env = gateway_env(tmp_path / "home", "http://127.0.0.1:9")
    env["DATABASE_URL"] = "postgres://nobody@127.0.0.1:9/none"  # never connected to
    result = manage(env, "backup", str(tmp_path / "copy.db"))
    assert result.returncode != 0
    assert "pg_dump" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "copy.db").exists()
