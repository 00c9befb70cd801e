"""Cost over time as an inline SVG, drawn on the server: no chart library, works offline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.utils.dateparse import parse_datetime

WIDTH, HEIGHT, TOP, BOTTOM = 720, 160, 10, 20


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    max_label: str
    start_label: str
    end_label: str
    width: int = WIDTH
    height: int = HEIGHT
    baseline: int = HEIGHT - BOTTOM


def bucket_for(start: datetime, end: datetime) -> str:
    """Hourly bars up to two days, daily bars beyond: 24–48 bars, never hundreds."""
    return "hour" if end - start <= timedelta(days=2) else "day"


def cost_chart(groups: list[dict], start: datetime, end: datetime, bucket: str) -> Chart | None:
    """Bars placed by time across the window, so a quiet hour shows as a gap."""
    points = [(moment(g["key"]), Decimal(str(g.get("cost_usd") or 0))) for g in groups]
    points = [(t, cost) for t, cost in points if t is not None]
    if not points:
        return None
    step = timedelta(hours=1) if bucket == "hour" else timedelta(days=1)
    span = max((end - start).total_seconds(), 1.0)
    top = max(cost for _, cost in points) or Decimal(1)
    usable = HEIGHT - TOP - BOTTOM
    width = max(WIDTH * step.total_seconds() / span - 2, 2.0)
    bars = []
    for t, cost in points:
        x = WIDTH * (t - start).total_seconds() / span
        x = min(max(x, 0.0), WIDTH - width)
        h = float(cost / top) * usable
        label = f"{t:%Y-%m-%d %H:%M}: ${cost:.4f}"
        bars.append(
            Bar(round(x, 1), round(HEIGHT - BOTTOM - h, 1), round(width, 1), round(h, 1), label)
        )
    fmt = "%b %d %H:%M" if bucket == "hour" else "%b %d"
    return Chart(bars, f"${top:.4f}", f"{start:{fmt}}", f"{end:{fmt}}")


def moment(value: datetime | str | None) -> datetime | None:
    if isinstance(value, str):
        value = parse_datetime(value)
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # SQLite hands back naive UTC
    return value
