"""The budget as the dashboard tells it: the numbers the gateway enforces, the events it
recorded, and the calendar windows that match the quotas' periods."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import orjson
import pytest
from django.db.models import Q
from django.test import override_settings
from django.utils import timezone

from analytics import budgets
from analytics.models import Call
from analytics.periods import period_bounds
from gateway import routing
from identity.models import GatewayKey, Quota, Team, TeamMembership, User
from metis_site import settings as site
from tests.factories import make_key, make_team, make_user
from tests.integration.analytics_seed import call_event, write

RAW = orjson.dumps({
    "model": "claude-haiku-4-5", "max_tokens": 16,
    "messages": [{"role": "user", "content": "Say hello"}],
})  # fmt: skip


def call(gateway, token: str) -> httpx.Response:
    headers = {"x-api-key": token, "anthropic-version": "2023-06-01"}
    return httpx.post(f"{gateway.url}/v1/messages", headers=headers, content=RAW)


def page(client, url: str) -> str:
    # The gateway fixture runs the gateway's own URLs and middleware: the page needs serve's.
    with override_settings(ROOT_URLCONF="metis_site.urls", MIDDLEWARE=site.MIDDLEWARE):
        response = client.get(url)
    assert response.status_code == 200, response.content[:300]
    return response.content.decode()


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_the_strip_shows_what_the_gateway_enforces_and_the_events_it_recorded(
    gateway, token, client, settings
):
    settings.METIS_LOCAL_MODE = True
    routing.forget_catalog()
    eng = Team.objects.get(name="eng")
    # About $0.00006 a call: the first passes 50 % of the soft cap, the second all of it.
    quota = Quota.objects.create(
        team=eng, period="month", soft_cap_usd=Decimal("0.0001"), hard_cap_usd=Decimal("100")
    )
    assert [call(gateway, token).status_code for _ in range(3)] == [200] * 3
    spent = sum(Decimal(str(e["cost_usd"])) for e in gateway.events("llm.call_completed"))
    assert budgets.status(quota, timezone.now()).spent_usd == spent  # what the gateway loads
    key = GatewayKey.objects.get(name="alice-laptop")
    Quota.objects.create(key=key, period="day", hard_cap_usd=Decimal("0"))
    assert call(gateway, token).status_code == 429  # a $0 cap stops the key at once
    gateway.events()
    shown = text(page(client, "/dashboard/"))
    assert f"${spent:.2f}" in shown or "<$0.01" in shown
    assert "soft cap" in shown and "hard cap" in shown
    resets = period_bounds("month", timezone.now())[1]
    assert f"Resets {resets:%b %d} 00:00 UTC" in shown
    assert re.search(r"eng passed 50 % of its monthly soft cap \(\$0\.00\) at \w{3} \d\d", shown)
    assert "eng reached its monthly soft cap" in shown
    assert "key alice-laptop: 1 call refused by a hard cap, the last at" in shown
    keys = page(client, "/dashboard/?tab=identity&view=key")
    row = keys[keys.index('data-key="alice-laptop"') :]
    assert "quota-hard" in row[: row.index("</tr>")]  # the key's own quota, not "—"


def test_a_developer_sees_their_own_budget_events_and_not_their_teams(
    transactional_db, token, client, settings
):
    settings.METIS_LOCAL_MODE = False
    alice = User.objects.get(username="alice")
    key = GatewayKey.objects.get(name="alice-laptop")
    now = datetime.now(UTC) - timedelta(minutes=1)
    write([call_event(now, key=key.id, key_name=key.name, user="alice", team="eng",
                      cost="0", status=429, error_class="QUOTA_EXCEEDED")])  # fmt: skip
    client.force_login(alice)
    shown = text(page(client, "/dashboard/"))
    assert "key alice-laptop: 1 call refused" in shown
    assert "No budget applies to your keys" in shown
    TeamMembership.objects.create(user=alice, team=Team.objects.get(name="eng"),
                                  role="budget_owner")  # fmt: skip
    Quota.objects.create(team=Team.objects.get(name="eng"), period="week",
                         soft_cap_usd=Decimal("5"))  # fmt: skip
    shown = text(page(client, "/dashboard/"))
    assert "eng · team · weekly" in shown and "soft cap" in shown
    assert 'aria-current="true">This month<' in page(client, "/dashboard/")


@pytest.mark.parametrize("window", ["today", "this_week", "this_month", "last_month"])
def test_calendar_windows_start_where_quota_periods_do(client, settings, transactional_db, window):
    settings.METIS_LOCAL_MODE = True
    now = timezone.now()
    month_start = period_bounds("month", now)[0]
    moments = [now - timedelta(seconds=1), month_start - timedelta(seconds=1),
               period_bounds("week", now)[0]]  # fmt: skip
    write([call_event(m) for m in moments])
    answer = client.get("/analytics/cost", {"window": window}).json()
    expected = {
        "today": sum(m >= period_bounds("day", now)[0] for m in moments),
        "this_week": sum(m >= period_bounds("week", now)[0] for m in moments),
        "this_month": sum(m >= month_start for m in moments),
        "last_month": 1,
    }[window]
    assert answer["totals"]["calls"] == expected
    assert datetime.fromisoformat(answer["window"]["from"]) == (
        period_bounds("month", month_start - timedelta(days=1))[0]
        if window == "last_month"
        else period_bounds({"today": "day", "this_week": "week"}.get(window, "month"), now)[0]
    )


def test_a_bad_window_gets_a_422_naming_it_with_the_calendar_windows_listed(client, settings):
    settings.METIS_LOCAL_MODE = True
    response = client.get("/analytics/by_team", {"window": "this_year"})
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["query", "window"] and "this_month" in error["msg"]


def test_statuses_read_together_match_each_quota_read_alone(
    transactional_db, django_assert_max_num_queries
):
    # Teams, users with several keys, keys, over day and month periods, with calls both
    # sides of each period's start: the batched read must give every quota what it
    # would get alone, in a number of queries that does not grow with the quotas.
    now = timezone.now()
    day_start, month_start = period_bounds("day", now)[0], period_bounds("month", now)[0]
    teams = [make_team(name=f"bt-{t}") for t in range(3)]
    users = [make_user(username=f"bu-{u}") for u in range(4)]
    keys = [make_key(name=f"bk-{k}", user=users[k % 4], team=teams[k % 3])[0] for k in range(8)]
    moments = [now - timedelta(seconds=30), day_start + timedelta(seconds=1),
               day_start - timedelta(seconds=1), month_start - timedelta(hours=2)]  # fmt: skip
    write([
        call_event(at, key=key.id, key_name=key.name, user=f"label-{i % 3}",
                   team=key.team.name, cost=None if i % 5 == 0 else f"0.00{i + 1}")
        for i, (key, at) in enumerate((k, m) for k in keys for m in moments)
    ])  # fmt: skip
    quotas = [Quota.objects.create(team=t, period=p, soft_cap_usd=Decimal("0.01"))
              for t in teams for p in ("day", "month")]  # fmt: skip
    quotas += [Quota.objects.create(user=u, period="month", hard_cap_usd=Decimal("0.02"))
               for u in users]  # fmt: skip
    quotas += [Quota.objects.create(key=k, period="day", hard_cap_usd=Decimal("1")) for k in keys]
    quotas = list(
        Quota.objects.select_related("team", "user", "key").filter(pk__in=[q.pk for q in quotas])
    )
    with django_assert_max_num_queries(25):
        together = budgets.statuses(quotas, now)
    for quota in quotas:
        alone = budgets.status(quota, now)
        assert together[quota.pk] == alone
        scope, scope_id = budgets.scope_of(quota)
        start = period_bounds(quota.period, now)[0]
        rows = Call.objects.filter(timestamp__gte=start)
        owned = [k.id for k in keys if k.user.username == scope_id]
        column = {"team": Q(team=scope_id), "key": Q(gateway_key_id=scope_id),
                  "user": Q(gateway_key_id__in=owned)}[scope]  # fmt: skip
        rows = rows.filter(column)
        assert alone.spent_usd == sum((c.cost_usd or 0 for c in rows), Decimal(0))
        assert alone.unpriced_calls == sum(c.cost_usd is None for c in rows)
        assert alone.spent_usd > 0
