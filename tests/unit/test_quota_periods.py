"""Quota periods are calendar periods in METIS_TIME_ZONE, computed from the timestamp."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from analytics.periods import EPOCH, period_bounds

BERLIN = ZoneInfo("Europe/Berlin")


def at(text: str, zone=UTC) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone)


@pytest.mark.parametrize(
    ("period", "now", "start", "end"),
    [
        ("day", "2026-11-22T23:59:59", "2026-11-22T00:00:00", "2026-11-23T00:00:00"),
        ("week", "2026-11-22T10:00:00", "2026-11-16T00:00:00", "2026-11-23T00:00:00"),  # Sun
        ("week", "2026-11-23T00:00:00", "2026-11-23T00:00:00", "2026-11-30T00:00:00"),  # Mon
        ("month", "2026-01-31T12:00:00", "2026-01-01T00:00:00", "2026-02-01T00:00:00"),
        ("month", "2026-12-31T23:59:59", "2026-12-01T00:00:00", "2027-01-01T00:00:00"),
        ("month", "2028-02-29T08:00:00", "2028-02-01T00:00:00", "2028-03-01T00:00:00"),
    ],
)
def test_periods_follow_the_calendar_in_utc(settings, period, now, start, end):
    settings.TIME_ZONE = "UTC"
    assert period_bounds(period, at(now)) == (at(start), at(end))


def test_a_total_quota_never_resets(settings):
    assert period_bounds("total", at("2026-11-22T10:00:00")) == (EPOCH, None)


def test_a_day_starts_at_local_midnight_in_the_configured_zone(settings):
    settings.TIME_ZONE = "Europe/Berlin"
    # 23:30 UTC on the 22nd is already the 23rd in Berlin.
    start, end = period_bounds("day", at("2026-11-22T23:30:00"))
    assert start == at("2026-11-23T00:00:00", BERLIN)
    assert end == at("2026-11-24T00:00:00", BERLIN)
    assert start.astimezone(UTC) == at("2026-11-22T23:00:00")


def test_the_day_clocks_spring_forward_is_23_hours_long(settings):
    settings.TIME_ZONE = "Europe/Berlin"
    start, end = period_bounds("day", at("2026-03-29T12:00:00"))
    assert (end.astimezone(UTC) - start.astimezone(UTC)).total_seconds() == 23 * 3600
    assert end.astimezone(UTC) == at("2026-03-29T22:00:00")


def test_a_month_boundary_in_a_zone_west_of_utc(settings):
    settings.TIME_ZONE = "America/Los_Angeles"
    # 2027-01-01T05:00Z is still New Year's Eve in Los Angeles.
    start, end = period_bounds("month", at("2027-01-01T05:00:00"))
    assert start.month == 12 and start.year == 2026
    assert end == datetime(2027, 1, 1, tzinfo=ZoneInfo("America/Los_Angeles"))
