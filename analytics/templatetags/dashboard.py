"""Presentation helpers for the dashboard: money, relative time, query strings."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django import template
from django.http import QueryDict
from django.utils import timezone
from django.utils.dateparse import parse_datetime

register = template.Library()


@register.filter
def usd(value: Decimal | float | None) -> str:
    """$12.42; sub-cent amounts keep four decimals, since one haiku call costs $0.0003."""
    if value is None:
        return "—"
    amount = Decimal(str(value))
    if amount != 0 and abs(amount) < Decimal("0.01"):
        return f"${amount:.4f}"
    return f"${amount:,.2f}"


def as_datetime(value: datetime | str | None) -> datetime | None:
    if isinstance(value, str):
        value = parse_datetime(value)
    return value


@register.filter
def ago(value: datetime | str | None) -> str:
    """Compact relative time, as the seed draws it: "2m ago", "1h ago"."""
    moment = as_datetime(value)
    if moment is None:
        return "—"
    seconds = max(int((timezone.now() - moment).total_seconds()), 0)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


@register.filter
def when(value: datetime | str | None) -> str:
    moment = as_datetime(value)
    if moment is None:
        return "—"
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S")


@register.filter
def percent(value: float | Decimal | None) -> str:
    return "—" if value is None else f"{float(value) * 100:.0f}%"


@register.simple_tag(takes_context=True)
def query(context: template.Context, **changes: object) -> str:
    """The current query string with some parameters changed; None removes one.
    Every link keeps the window and filters, so a tab switch never loses the scope."""
    params: QueryDict = context["request"].GET.copy()
    params.pop("page", None)  # a new view starts on its first page
    for name, value in changes.items():
        if value is None or value == "":
            params.pop(name, None)
        else:
            params[name] = str(value)
    return "?" + params.urlencode() if params else "?"
