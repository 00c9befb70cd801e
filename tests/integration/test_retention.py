"""Pruning raw events: by `metis manage prune` and by `metis serve` on its schedule, never
into the last 31 days, and never touching the calls and rollups analytics reads."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db.models import Sum
from django.test import override_settings

from analytics import retention
from analytics.models import Call, CallDay, CallHour, Event
from tests.integration.analytics_seed import call_event, write
from tests.integration.serve_process import start_serve

SQLITE = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"


def test_the_horizon_is_a_utc_midnight_and_never_within_31_days():
    now = datetime(2026, 6, 15, 12, 30, tzinfo=UTC)
    edge = retention.horizon(timedelta(days=90), now)
    assert edge.before == datetime(2026, 3, 17, tzinfo=UTC)
    assert edge.reason == "older than 90 days"
    short = retention.horizon(timedelta(days=7), now)
    assert short.before == datetime(2026, 5, 15, tzinfo=UTC)
    assert "31 days" in short.reason


def prune(*arguments: str) -> str:
    out = StringIO()
    call_command("prune", *arguments, stdout=out)
    return out.getvalue()


def totals() -> tuple:
    return (
        Call.objects.count(),
        Call.objects.aggregate(c=Sum("cost_usd"))["c"],
        CallHour.objects.aggregate(n=Sum("calls"), c=Sum("cost_usd")),
        CallDay.objects.aggregate(n=Sum("calls"), c=Sum("cost_usd")),
    )


def test_prune_deletes_old_events_and_keeps_calls_rollups_and_what_rebuild_cannot_make(
    transactional_db,
):
    now = datetime.now(UTC)
    old, middle, recent = (write([call_event(now - timedelta(days=d))])[0] for d in (100, 40, 5))
    before = totals()
    assert before[0] == 3

    assert prune("--older-than", "60d", "--dry-run").startswith("would prune 1 events")
    assert Event.objects.count() == 3
    assert prune("--older-than", "60d").startswith("pruned 1 events")
    assert set(Event.objects.values_list("id", flat=True)) == {middle.id, recent.id}
    assert totals() == before  # the dashboard and budgets read these: nothing changed

    # Asked for 7 days, it keeps 31: the dashboard reads budget alerts that far back.
    assert "31 days" in prune("--older-than", "1w")
    assert set(Event.objects.values_list("id", flat=True)) == {recent.id}
    assert totals() == before

    # Rebuilding can only rebuild what is kept: it leaves the pruned days' rows alone.
    call_command("rebuild_rollups", stdout=StringIO())
    assert totals() == before
    assert Call.objects.filter(pk=old.id).exists()


@pytest.mark.parametrize("age", ["banana", "0d", "-5d", "3h"])
def test_a_bad_age_is_refused_with_what_to_write(transactional_db, age):
    with pytest.raises(CommandError, match="must look like 90d or 12w"):
        prune(f"--older-than={age}")


def test_prune_without_an_age_says_what_to_set(transactional_db):
    with pytest.raises(CommandError, match="METIS_EVENT_RETENTION_DAYS"):
        prune()
    with override_settings(METIS_EVENT_RETENTION_DAYS=400):
        assert prune("--dry-run").startswith("would prune 0 events")


@pytest.mark.skipif(not SQLITE, reason="the serve subprocess uses its own SQLite database")
def test_metis_serve_prunes_on_its_schedule(tmp_path):
    home = tmp_path / "home"
    env = {"METIS_HOME": str(home), "PATH": "/usr/bin:/bin"}
    subprocess.run(
        [sys.executable, "-m", "metis_site.cli", "manage", "migrate", "-v0"],
        env={**env, "DJANGO_SETTINGS_MODULE": "metis_site.settings"}, check=True, timeout=120,
    )  # fmt: skip
    now_us = int(time.time() * 1_000_000)
    day_us = 86400 * 1_000_000
    with sqlite3.connect(home / "metis.db") as conn:
        conn.executemany(
            "INSERT INTO events (id, type, timestamp_us, payload_json) VALUES (?, ?, ?, '{}')",
            [("old", "turn.completed", now_us - 90 * day_us),
             ("kept", "turn.completed", now_us - 2 * day_us)],
        )  # fmt: skip
    serve = start_serve(home, "serve", METIS_EVENT_RETENTION_DAYS="60", METIS_LOG_LEVEL="INFO")
    try:
        serve.wait_until_up(time.monotonic() + 60)
        deadline = time.monotonic() + 60
        while "pruned 1 events" not in serve.output():
            assert time.monotonic() < deadline, serve.output()
            time.sleep(0.2)
    finally:
        serve.stop()
    with sqlite3.connect(home / "metis.db") as conn:
        assert conn.execute("SELECT id FROM events").fetchall() == [("kept",)]
