"""Calendar periods in METIS_TIME_ZONE: the one reading of "this day / week / month" that
the quotas the gateway enforces (analytics.budgets) and the dashboard's calendar windows
(analytics.scope) share, so "this month" on a chart is the month a budget counts."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings

EPOCH = datetime(1970, 1, 1, tzinfo=ZoneInfo("UTC"))
DAY, WEEK, MONTH, TOTAL = "day", "week", "month", "total"


def zone() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


def period_bounds(period: str, now: datetime) -> tuple[datetime, datetime | None]:
    """[start, end) of the calendar period containing `now` (`total`: from the epoch,
    no end). Weeks start on Monday."""
    if period == TOTAL:
        return EPOCH, None
    tz = zone()
    today = now.astimezone(tz).date()
    if period == DAY:
        first, after = today, today + timedelta(days=1)
    elif period == WEEK:
        first = today - timedelta(days=today.weekday())
        after = first + timedelta(days=7)
    else:
        first = today.replace(day=1)
        after = (first + timedelta(days=32)).replace(day=1)
    # Built from dates, so a day that DST makes 23 or 25 hours long still ends at midnight.
    start = datetime(first.year, first.month, first.day, tzinfo=tz)
    return start, datetime(after.year, after.month, after.day, tzinfo=tz)


_current: dict[tuple[str, str], tuple[float, float, tuple[datetime, datetime | None]]] = {}


def current_bounds(period: str, now: datetime) -> tuple[datetime, datetime | None]:
    """`period_bounds(period, now)`, kept while `now` is inside it: the budget check asks
    for every rule of every call, and the answer changes once a day at most. Compared as
    timestamps, which an aware datetime in the zone would recompute its offset for."""
    key = (period, settings.TIME_ZONE)
    at = now.timestamp()
    kept = _current.get(key)
    if kept is None or not kept[0] <= at < kept[1]:
        start, end = bounds = period_bounds(period, now)
        kept = _current[key] = (start.timestamp(), end.timestamp() if end else math.inf, bounds)
    return kept[2]


def previous_bounds(period: str, now: datetime) -> tuple[datetime, datetime]:
    """The whole calendar period before the one containing `now` (not for `total`)."""
    start, _ = period_bounds(period, now)
    return period_bounds(period, start - timedelta(microseconds=1))[0], start


ADJECTIVES = {DAY: "daily", WEEK: "weekly", MONTH: "monthly", TOTAL: "total"}
