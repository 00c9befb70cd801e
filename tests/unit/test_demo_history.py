"""The shape `metis demo` gives its month: every weekday reached, weekdays busier than
weekends, office hours busier than nights, nothing in the future, the same every run."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from metis_site.demo_history import SPAN, moments

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize("day", range(7))  # `now` on each day of the week
@pytest.mark.parametrize("count", [100, 300])
def test_calls_reach_every_weekday_of_the_past_month_and_never_the_future(day, count) -> None:
    now = datetime(2026, 11, 2 + day, 10, 17, tzinfo=UTC)  # 2 Nov 2026 is a Monday

    placed = moments(count, now, BERLIN, random.Random(1))

    assert len(placed) == count and placed == sorted(placed)
    assert all(now - SPAN <= m < now for m in placed)
    local_days = {m.astimezone(BERLIN).date() for m in placed}
    start = (now - SPAN).astimezone(BERLIN).date()
    weekdays = {
        start + timedelta(days=i)
        for i in range(1, 30)  # the whole days between the partial first and last
        if (start + timedelta(days=i)).weekday() < 5
    }
    assert weekdays <= local_days
    assert len({m.date() for m in placed}) >= 20


def test_weekdays_and_office_hours_carry_most_of_the_traffic() -> None:
    now = datetime(2026, 11, 28, 9, tzinfo=UTC)

    placed = [m.astimezone(BERLIN) for m in moments(1000, now, BERLIN, random.Random(3))]

    by_weekday = Counter(m.weekday() for m in placed)
    assert min(by_weekday[d] for d in range(5)) > 3 * max(by_weekday[5], by_weekday[6])
    office = sum(9 <= m.hour < 18 for m in placed)
    assert office > 0.7 * len(placed)
    first_week = sum(m < now - SPAN + timedelta(days=7) for m in placed)
    last_week = sum(m >= now - timedelta(days=7) for m in placed)
    assert last_week > first_week  # traffic grows over the month


def test_the_same_seed_places_calls_the_same_way() -> None:
    now = datetime(2026, 11, 28, 9, tzinfo=UTC)
    assert moments(50, now, BERLIN, random.Random(5)) == moments(50, now, BERLIN, random.Random(5))
