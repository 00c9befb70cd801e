"""How the dashboard writes numbers, and how its chart cuts a window into buckets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from analytics import charts
from analytics.budgets import QuotaStatus
from analytics.periods import previous_bounds
from analytics.scope import ScopeError, parse_scope
from analytics.templatetags.dashboard import count, latency, money, tokens, unpriced, usd

NOW = datetime(2026, 11, 28, 14, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "shown"),
    [(Decimal("1234.5"), "$1,234.50"), (Decimal("0.004"), "<$0.01"), (Decimal("0.01"), "$0.01"),
     (Decimal(0), "$0.00"), (None, "—"), (Decimal("0.005"), "<$0.01")],
)  # fmt: skip
def test_money_is_to_the_cent_with_the_exact_amount_in_a_tooltip(value, shown):
    assert usd(value) == shown
    if value is not None:
        assert f">{shown}</span>" in money(value).replace("&lt;", "<")
    assert 'title="$0.0003125"' in money(Decimal("0.0003125000"))


def test_counts_tokens_and_latency_read_at_a_glance():
    assert count(99992) == "99,992"
    assert tokens(1_000_000_000).endswith(">1.0 B</span>") and 'title="1,000,000,000 tokens"' in (
        tokens(1_000_000_000)
    )
    assert (
        ">12.3 K<" in tokens(12_345)
        and ">9,999<" in tokens(9_999)
        and ">4.2 M<" in tokens(4_200_000)
    )
    assert (latency(1100), latency(850.4), latency(None)) == ("1.1 s", "850 ms", "—")


def test_unpriced_calls_are_flagged_never_hidden():
    assert unpriced(0) == "" and unpriced(None) == ""
    assert ">+1,204 unpriced calls<" in unpriced(1204) and ">+1 unpriced call<" in unpriced(1)


@pytest.mark.parametrize(
    ("span", "name", "step"),
    [(timedelta(hours=1), "minute", timedelta(minutes=2)),
     (timedelta(minutes=10), "minute", timedelta(minutes=1)),
     (timedelta(hours=14), "hour", timedelta(hours=1)),
     (timedelta(days=2), "hour", timedelta(hours=1)),
     (timedelta(days=30), "day", timedelta(days=1))],
)  # fmt: skip
def test_chart_buckets_fit_the_window(span, name, step):
    bucket = charts.bucket_for(NOW - span, NOW)
    assert (bucket.name, bucket.step) == (name, step)


def test_the_chart_has_dollar_and_time_axes_and_a_pace_line(settings):
    settings.TIME_ZONE = "UTC"
    start = NOW - timedelta(hours=1)
    bucket = charts.bucket_for(start, NOW)
    points = [charts.Point(NOW - timedelta(minutes=m), Decimal("0.3"), 3, 1) for m in (50, 10)]
    month = NOW.replace(day=1, hour=0, minute=0)
    status = QuotaStatus(Decimal(0), None, "ok", month + timedelta(days=30), month, Decimal(720))
    quota = {"name": "eng", "status": status, "adjective": "monthly", "cap_kind": "hard"}
    chart = charts.cost_chart(points, start, NOW, bucket, quota)
    assert [t.label for t in chart.y_ticks] == ["$0.00", "$0.25", "$0.50"]
    assert chart.x_ticks[0].label == "13:02" and chart.x_ticks[-1].label == "14:02"
    assert chart.zone == "UTC" and len(chart.bars) == 2
    assert "$0.30" in chart.bars[0].label and "1 unpriced" in chart.bars[0].label
    # $720 over 30 days is $0.0333… per 2 minutes: the line the bars must stay under.
    assert chart.pace is not None and "$0.03 per 2 minutes" in chart.pace.label


def test_calendar_windows_are_named_and_bad_ones_name_the_parameter(settings):
    settings.TIME_ZONE = "UTC"
    scope = parse_scope({"window": "last_month"}, NOW)
    assert (scope.start, scope.end) == previous_bounds("month", NOW)
    assert scope.start == datetime(2026, 10, 1, tzinfo=UTC) and scope.end.day == 1
    assert parse_scope({"window": "today"}, NOW).start == datetime(2026, 11, 28, tzinfo=UTC)
    assert parse_scope({"window": "this_week"}, NOW).start == datetime(2026, 11, 23, tzinfo=UTC)
    with pytest.raises(ScopeError) as refused:
        parse_scope({"window": "fortnight"}, NOW)
    assert refused.value.param == "window" and "this_month" in refused.value.message
