"""Spend over time, drawn on the server: no chart library, works offline.

The bars are an SVG stretched to the card's width; the axes are HTML beside it, so their
text stays the page's size on a phone instead of shrinking with the drawing. Buckets fit
the window (minutes for an hour, hours for a day, days beyond), and a quota that covers
the chart adds its pace: the spend per bucket that would use the budget up exactly at
the period's end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.utils import timezone

from analytics.templatetags.dashboard import exact_usd, usd

WIDTH, HEIGHT = 1000, 200  # the SVG's own units; it is stretched to fit
MINUTE_STEPS = (1, 2, 5, 10, 15, 30)


@dataclass(frozen=True)
class Bucket:
    name: str  # "minute" | "hour" | "day"
    step: timedelta

    @property
    def unit(self) -> str:
        if self.name == "minute":
            minutes = int(self.step.total_seconds() // 60)
            return "minute" if minutes == 1 else f"{minutes} minutes"
        return self.name


def bucket_for(start: datetime, end: datetime) -> Bucket:
    """About 30 bars for an hour, hourly bars up to two days, daily bars beyond."""
    span = end - start
    if span <= timedelta(hours=6):
        wanted = span.total_seconds() / 60 / 30
        minutes = next((m for m in MINUTE_STEPS if m >= wanted), MINUTE_STEPS[-1])
        return Bucket("minute", timedelta(minutes=minutes))
    if span <= timedelta(days=2):
        return Bucket("hour", timedelta(hours=1))
    return Bucket("day", timedelta(days=1))


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str  # what a tooltip and a screen reader say


@dataclass(frozen=True)
class Tick:
    at: float  # percent: from the bottom (y) or from the left (x)
    label: str
    y: float = 0.0  # a y tick's gridline, in SVG units


@dataclass(frozen=True)
class Pace:
    y: float  # in SVG units
    at: float  # percent from the bottom
    label: str


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    zone: str
    unit: str
    pace: Pace | None
    width: int = WIDTH
    height: int = HEIGHT


@dataclass(frozen=True)
class Point:
    start: datetime
    cost: Decimal
    calls: int
    unpriced: int


def cost_chart(
    points: list[Point], start: datetime, end: datetime, bucket: Bucket, quota: dict | None
) -> Chart | None:
    """Bars placed by time across the window, so a quiet hour shows as a gap."""
    if not points:
        return None
    # Whole buckets: a day that began before the window or ends after it is drawn whole.
    start = min(start, points[0].start)
    end = max(end, points[-1].start + bucket.step)
    span = max((end - start).total_seconds(), 1.0)
    pace = pace_per_bucket(quota, bucket) if quota else None
    top = nice_ceiling(max([p.cost for p in points] + [pace or Decimal(0)]))
    bar_width = max(WIDTH * bucket.step.total_seconds() / span - 1, 1.0)
    bars = []
    for p in points:
        x = min(max(WIDTH * (p.start - start).total_seconds() / span, 0.0), WIDTH - bar_width)
        h = max(float(p.cost / top) * HEIGHT, 0.0)
        bars.append(
            Bar(round(x, 2), round(HEIGHT - h, 2), round(bar_width, 2), round(h, 2), tip(p, bucket))
        )
    zone = timezone.get_current_timezone_name()
    y_ticks = [
        Tick(f * 100, axis_usd(top * Decimal(f), top), round(HEIGHT * (1 - f), 2))
        for f in (0, 0.5, 1)
    ]
    pace_line = None
    if pace is not None:
        at = float(pace / top)
        label = (
            f"{quota['name']}'s budget pace: {usd(pace)} per {bucket.unit} "
            f"({usd(quota['status'].cap_usd)} {quota['adjective']} {quota['cap_kind']} cap)"
        )
        pace_line = Pace(round(HEIGHT * (1 - at), 2), round(at * 100, 2), label)
    return Chart(bars, y_ticks, x_ticks(start, end, bucket), zone, bucket.unit, pace_line)


def pace_per_bucket(quota: dict, bucket: Bucket) -> Decimal | None:
    status = quota["status"]
    if status.cap_usd is None or status.resets_at is None or status.period_start is None:
        return None
    length = (status.resets_at - status.period_start).total_seconds()
    return status.cap_usd * Decimal(bucket.step.total_seconds()) / Decimal(length)


def tip(p: Point, bucket: Bucket) -> str:
    local = timezone.localtime(p.start)
    after = timezone.localtime(p.start + bucket.step)
    hours = f"{local:%b %d %H:%M}–{after:%H:%M}"
    when = f"{local:%a %b %d}" if bucket.name == "day" else hours
    calls = f"{p.calls:,} call{'s' if p.calls != 1 else ''}"
    extra = f", {p.unpriced:,} unpriced" if p.unpriced else ""
    return f"{when} {local:%Z}: {usd(p.cost)} ({exact_usd(p.cost)}) · {calls}{extra}"


def x_ticks(start: datetime, end: datetime, bucket: Bucket) -> list[Tick]:
    """Five labels, evenly spaced across the window, in METIS_TIME_ZONE."""
    span = (end - start).total_seconds()
    fmt = "%b %d" if bucket.name == "day" else "%H:%M"
    if bucket.name != "day" and end - start > timedelta(hours=24):
        fmt = "%b %d %H:%M"
    ticks = []
    for i in range(5):
        moment = start + timedelta(seconds=span * i / 4)
        label = f"{timezone.localtime(moment):{fmt}}"
        ticks.append(Tick(i * 25.0, label))
    return ticks


def nice_ceiling(value: Decimal) -> Decimal:
    """The smallest 1, 2, 2.5 or 5 × 10^n at or above `value` (an axis' top)."""
    if value <= 0:
        return Decimal("0.01")
    exponent = math.floor(math.log10(value))
    for step in (1, 2, Decimal("2.5"), 5, 10):
        top = Decimal(step).scaleb(exponent)
        if top >= value:
            return top.normalize()
    return Decimal(10).scaleb(exponent)  # pragma: no cover


def axis_usd(value: Decimal, top: Decimal) -> str:
    """Enough decimals to tell the ticks apart: $0.0025 on a tiny axis, $1,200 on a big one."""
    if top >= 100:
        return f"${value:,.0f}"
    decimals = max(2, -(top / 2).normalize().as_tuple().exponent)
    return f"${value:,.{decimals}f}"
