"""Presentation helpers for the dashboard: numbers people read at a glance, with the
exact figure one hover (or focus) away, relative time, query strings."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from urllib.parse import urlencode

from django import template
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()
CENT = Decimal("0.01")


def exact_usd(value: Decimal | float | int) -> str:
    amount = Decimal(str(value))
    text = format(amount.normalize(), "f") if amount else "0"
    return f"${text}"


@register.filter
def usd(value: Decimal | float | None) -> str:
    """$1,234.56: to the cent, "<$0.01" for a sum that rounds away."""
    if value is None:
        return "—"
    amount = Decimal(str(value))
    if amount != 0 and abs(amount) < CENT:
        return "<$0.01" if amount > 0 else "-<$0.01"
    return f"${amount:,.2f}" if amount >= 0 else f"-${-amount:,.2f}"


@register.filter
def money(value: Decimal | float | None) -> SafeString | str:
    """`usd` with the exact amount in a tooltip."""
    if value is None:
        return "—"
    return format_html('<span class="money" title="{}">{}</span>', exact_usd(value), usd(value))


@register.filter
def count(value: int | None) -> str:
    """99,992."""
    return "—" if value is None else f"{int(value):,}"


@register.filter
def tokens(value: int | None) -> SafeString | str:
    """Token counts in K / M / B past ten thousand (1.0 B), exact in a tooltip."""
    if value is None:
        return "—"
    n = int(value)
    short = f"{n:,}"
    for size, unit in ((10**9, "B"), (10**6, "M"), (10**4, "K")):
        if abs(n) >= size:
            short = f"{n / (size if unit != 'K' else 10**3):.1f} {unit}"
            break
    return format_html('<span title="{} tokens">{}</span>', f"{n:,}", short)


@register.filter
def latency(ms: float | None) -> str:
    """850 ms; 1.1 s from a second on."""
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms:,.0f} ms"
    return f"{ms / 1000:,.1f} s"


@register.filter
def unpriced(calls: int | None) -> SafeString | str:
    """The flag beside a cost that leaves out calls with no known price."""
    if not calls:
        return ""
    word = "call" if calls == 1 else "calls"
    return format_html(
        '<span class="unpriced" title="No known price: not in this cost">+{} unpriced {}</span>',
        f"{int(calls):,}",
        word,
    )


@register.filter
def pct(value: Decimal | float | None) -> str:
    """A percentage already in percent: 42 %, <1 % for a sliver, 1,250 % past the cap."""
    if value is None:
        return "—"
    v = float(value)
    if 0 < v < 1:
        return "<1 %"
    return f"{v:,.0f} %"


@register.filter
def bar_width(value: Decimal | float | None) -> str:
    """A meter's fill, in percent of its width (capped at the full bar)."""
    return f"{min(max(float(value or 0), 0.0), 100.0):.1f}"


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
def moment(value: datetime | str | None) -> str:
    """A date and time in METIS_TIME_ZONE, named: "Dec 01 00:00 UTC"."""
    value = as_datetime(value)
    if value is None:
        return "—"
    return timezone.localtime(value).strftime("%b %d %H:%M %Z")


@register.filter
def rate(value: Decimal | float | None) -> str:
    """A ratio (0.4213) as a percentage to a tenth: 42.1 %."""
    return "—" if value is None else f"{Decimal(str(value)) * 100:,.1f} %"


@register.filter
def percent(value: float | Decimal | None) -> str:
    return "—" if value is None else f"{float(value) * 100:.0f}%"


@register.simple_tag(takes_context=True)
def query(context: template.Context, **changes: object) -> str:
    """The current query string with some parameters changed; None removes one.
    Every link keeps the window and filters, so a tab switch never loses the scope."""
    # A plain dict, not QueryDict.copy(): the identity tables ask for thousands of these
    # and a QueryDict's deep copy was most of their render time.
    params = dict(context["request"].GET.lists())
    params.pop("page", None)  # a new view starts on its first page
    for name, value in changes.items():
        if value is None or value == "":
            params.pop(name, None)
        else:
            params[name] = [str(value)]
    return "?" + urlencode(params, doseq=True) if params else "?"
