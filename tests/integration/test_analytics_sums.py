"""Per-group sums read in one SQL statement across the window's parts (calls at the
edges, hours, days) are the call rows' own sums, exactly; and the identity tables summed
from one read of the window are what each table reads on its own."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db.models import Q

from analytics import aggregate, budgets, queries, rollup
from analytics.aggregate import latency_bucket
from analytics.models import KEY_GROUP, Call, Event, KeyDay, KeyWeek
from analytics.scope import Scope, Viewer
from identity.models import Quota
from tests.factories import make_key, make_team, make_user
from tests.integration.analytics_seed import call_event, write
from tests.integration.test_analytics_api import random_events

EVERYONE = Viewer(kind="all")
START, END = datetime(2026, 1, 1, 7, 45, tzinfo=UTC), datetime(2026, 1, 3, 16, 20, tzinfo=UTC)
# From a Thursday to the Tuesday of the third week after: two whole weeks, days each side.
LONG_END = datetime(2026, 1, 20, 16, 20, tzinfo=UTC)
# Call columns per group_by name ("label" is the call's `user` column).
COLUMNS = {"gateway_key_id": "gateway_key_id", "label": "user", "team": "team",
           "inbound_shape": "inbound_shape", "model": "model"}  # fmt: skip


def spread(events: list, *, days: int) -> list:
    """The seed's events (over three days from 2026-01-01) spread over `days` days."""
    if days == 3:
        return events
    out = []
    for i, event in enumerate(events):
        shift = (i * 7919 % days) // 3 * 3 * 86_400_000_000  # whole 3-day steps
        out.append(dataclasses.replace(event, timestamp_us=event.timestamp_us + shift))
    return out


def from_calls(dims: tuple[str, ...], scope: Scope, where: Q) -> dict[tuple, dict]:
    """What the groups must hold, summed in Python from every call row in the window."""
    rows = Call.objects.filter(
        scope.q(), where, timestamp__gte=scope.start, timestamp__lt=scope.end
    ).values()
    out: dict[tuple, dict] = defaultdict(
        lambda: {"calls": 0, "errors": 0, "cancelled": 0, "input_tokens": 0,
                 "cost_usd": Decimal(0), "unpriced_calls": 0, "last": None,
                 "histogram": [0] * 40}
    )  # fmt: skip
    for row in rows:
        group = out[tuple(row[COLUMNS[d]] or None for d in dims)]
        cancelled = row["error_class"] == "CANCELLED"
        group["calls"] += 1
        group["cancelled"] += cancelled
        group["errors"] += not cancelled and (row["status"] >= 400 or row["error_class"] != "")
        group["input_tokens"] += row["input_tokens"]
        group["cost_usd"] += row["cost_usd"] or 0
        group["unpriced_calls"] += row["cost_usd"] is None
        group["last"] = max(group["last"] or row["timestamp"], row["timestamp"])
        group["histogram"][latency_bucket(row["latency_ms"])] += 1
    return dict(out)


@pytest.mark.parametrize(
    "dims",
    [(), ("gateway_key_id",), ("label",), ("team", "gateway_key_id"), ("model",),
     ("gateway_key_id", "inbound_shape", "team", "label")],
)  # fmt: skip
@pytest.mark.parametrize(
    ("filters", "where"),
    [({}, Q()), ({"team": "t1"}, Q()), ({"label": "u2"}, Q()),
     ({}, Q(gateway_key_id__in=["gk_1", "gk_3"]))],
)  # fmt: skip
@pytest.mark.parametrize("weeks", [False, True], ids=["days", "weeks"])
def test_one_statement_gives_the_call_rows_own_sums(transactional_db, dims, filters, where, weeks):
    end = LONG_END if weeks else END
    # Calls in both partial hours at the edges, and just outside the window.
    edges = [call_event(at, key=key, user=user, team="t1", cost=cost, latency_ms=ms)
             for at, key, user, cost, ms in (
                 (START - timedelta(minutes=1), "gk_1", "u1", "0.5", 3.0),
                 (START, "gk_1", "u2", "0.25", 40.0),
                 (START + timedelta(minutes=10), "gk_3", "u2", None, 700.0),
                 (end - timedelta(minutes=5), "gk_3", "u1", "0.125", 9.0),
                 (end, "gk_1", "u2", "1", 1.0))]  # fmt: skip
    events = spread(random_events(300), days=20 if weeks else 3) + edges
    write(events[:200])
    write(events[100:])  # replayed: counted once
    scope = Scope(start=START, end=end, **filters)
    parts = [s for s, _, _ in aggregate.segments(START, end, weeks=weeks)]
    if weeks:
        assert parts == ["call", "call", "hour", "day", "week", "day", "hour"]
    else:
        assert parts == ["call", "call", "hour", "day", "hour"]

    groups, exact = aggregate.aggregate(EVERYONE, scope, dims, latency=True, where=where)

    expected = from_calls(dims, scope, where)
    assert not exact and expected and set(groups) == set(expected)
    for key, want in expected.items():
        agg = groups[key]
        got = {n: agg.sums[n] for n in ("calls", "errors", "cancelled", "input_tokens",
                                         "unpriced_calls")}  # fmt: skip
        assert got == {n: want[n] for n in got}, key
        assert agg.sums["cost_usd"] == want["cost_usd"], key
        assert agg.last_call_at == want["last"], key
        assert agg.histogram == want["histogram"], key


def test_an_empty_window_has_no_groups(transactional_db):
    write(random_events(20))
    scope = Scope(start=datetime(2027, 1, 1, tzinfo=UTC), end=datetime(2027, 2, 1, tzinfo=UTC))
    assert aggregate.aggregate(EVERYONE, scope, ())[0] == {}
    assert aggregate.aggregate(EVERYONE, scope, ("gateway_key_id",))[0] == {}
    # A signed-in user with no keys and no teams may see nothing, in any window.
    nobody, everything = Viewer(kind="user", user="nobody"), Scope(start=START, end=END)
    assert aggregate.aggregate(EVERYONE, everything, ())[0]
    assert aggregate.aggregate(nobody, everything, ())[0] == {}
    assert aggregate.aggregate(nobody, everything, ("gateway_key_id",), latency=True)[0] == {}


def test_the_identity_tables_from_one_read_are_the_tables_read_alone(transactional_db):
    users = [make_user(username=f"u{i}") for i in range(3)]
    keys = [make_key(user=user, name=f"k{i}")[0].id for i, user in enumerate(users)]
    Quota.objects.create(team=make_team(name="t1"), period="month", soft_cap_usd=Decimal(5))
    Quota.objects.create(user=users[1], period="month", hard_cap_usd=Decimal(5))
    Quota.objects.create(key_id=keys[2], period="day", hard_cap_usd=Decimal(5))
    events = []
    for event in random_events(300):  # the seed's keys, owned by users: by_user has accounts
        index = int(event.payload_json.split('"gk_')[1][0]) - 1
        payload = event.payload_json.replace(f"gk_{index + 1}", keys[index])
        events.append(dataclasses.replace(event, payload_json=payload))
    write(events)
    scope = Scope(start=START, end=END)

    groups = queries.key_groups(EVERYONE, scope)

    assert queries.by_key(EVERYONE, scope, groups) == queries.by_key(EVERYONE, scope)
    assert queries.by_user(EVERYONE, scope, groups) == queries.by_user(EVERYONE, scope)
    assert queries.by_team(EVERYONE, scope, groups) == queries.by_team(EVERYONE, scope)
    users = queries.by_user(EVERYONE, scope, groups)
    assert {row["user"] for row in users} == {"u0", "u1", "u2"}
    assert (
        sum(row["calls"] for row in users)
        == Call.objects.filter(timestamp__gte=START, timestamp__lt=END).count()
    )
    memo: dict = {}
    shared = budgets.by_team(EVERYONE, scope, groups, memo=memo)
    assert shared == budgets.by_team(EVERYONE, scope)
    assert len(memo) == 2  # the team's and its member's budgets, read once for the page
    assert budgets.by_user(EVERYONE, scope, groups, memo=memo) == budgets.by_user(EVERYONE, scope)
    assert budgets.by_key(EVERYONE, scope, groups, memo=memo) == budgets.by_key(EVERYONE, scope)
    assert len(memo) == 3
    assert [row["quota"] is not None for row in budgets.by_key(EVERYONE, scope)] == [
        row["gateway_key_id"] == keys[2] for row in budgets.by_key(EVERYONE, scope)
    ]


def week_table() -> list[tuple]:
    return sorted(
        KeyWeek.objects.values_list("week", *KEY_GROUP, "calls", "cost_usd", "errors",
                                    "unpriced_calls", "lat_12", "last_call_at")
    )  # fmt: skip


def test_weeks_are_the_sums_of_their_days_rebuilt_or_refilled(transactional_db):
    write(spread(random_events(300), days=20))
    weeks = week_table()
    by_week: dict[tuple, list] = defaultdict(lambda: [0, 0])
    for day, *group, calls, cost in KeyDay.objects.values_list("day", *KEY_GROUP, "calls",
                                                                "cost_usd"):  # fmt: skip
        monday = day - timedelta(days=day.weekday())
        assert monday.weekday() == 0 and (monday.hour, monday.minute) == (0, 0)
        by_week[(monday, *group)][0] += calls
        by_week[(monday, *group)][1] += cost
    assert {w[:6]: [w[6], w[7]] for w in weeks} == dict(by_week)
    assert len({w[0] for w in weeks}) == 4  # 2026-01-01 is a Thursday: four weeks touched

    call_command("rebuild_rollups")
    assert week_table() == weeks
    rollup.refill_narrow_grains()
    assert week_table() == weeks
    # Events pruned before a mid-week day: the rebuild keeps the week's earlier days.
    Event.objects.filter(timestamp_us__lt=int(datetime(2026, 1, 8, tzinfo=UTC).timestamp() * 1e6)
                         ).delete()  # fmt: skip
    call_command("rebuild_rollups")
    assert week_table() == weeks


def test_a_company_of_keys_gets_every_owner_and_key_budget(transactional_db):
    """Past queries.OWNERS_BY_ID keys in a window, owners and key budgets are read for
    every key at once rather than by id: the same rows either way."""
    team = make_team(name="co")
    users = [make_user(username=f"dev{i}") for i in range(3)]
    count = queries.OWNERS_BY_ID + 5
    keys = [make_key(name=f"k{i}", user=users[i % 3], team=team)[0] for i in range(count)]
    make_key(name="idle", user=users[0])  # no calls: not in the rows
    Quota.objects.create(key_id=keys[7].id, period="month", hard_cap_usd=Decimal("0.001"))
    at = START + timedelta(hours=2)
    write([call_event(at, key=k.id, key_name=k.name, user=None, team="co") for k in keys])
    scope = Scope(start=START, end=END)

    owners = queries.key_owners([k.id for k in keys] + ["gk_gone", None])
    assert owners == {k.id: {"name": k.name, "user": k.user.username, "team": "co"} for k in keys}
    assert queries.key_owners([keys[4].id]) == {keys[4].id: owners[keys[4].id]}
    rows = budgets.by_key(EVERYONE, scope)
    assert len(rows) == count
    assert {r["gateway_key_id"]: r["user"] for r in rows} == {k.id: k.user.username for k in keys}
    assert [r["gateway_key_id"] for r in rows if r["quota"]] == [keys[7].id]
    users_rows = budgets.by_user(EVERYONE, scope)
    assert {r["user"]: r["calls"] for r in users_rows} == {"dev0": 35, "dev1": 35, "dev2": 35}
