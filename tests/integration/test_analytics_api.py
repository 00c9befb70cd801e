"""The analytics API (local mode): every parameter, the 422s, the version headers, and the
typed rows and rollups agreeing with the events they are built from."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from django.core.management import call_command
from django.db.models import Count, Q, Sum
from django.test import override_settings

from analytics import aggregate
from analytics.aggregate import segments
from analytics.models import (
    GRAINS,
    KEY_GROUP,
    MODEL_GROUP,
    Call,
    CallDay,
    CallHour,
    KeyDay,
    ModelDay,
    ModelHour,
)
from analytics.scope import GROUP_BY, Scope, Viewer
from tests.factories import make_key, make_user
from tests.integration.analytics_seed import call_event, write

HELLO = [{"role": "user", "content": "Say hello"}]
DAY = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def api(client, settings, transactional_db):
    settings.METIS_LOCAL_MODE = True

    def get(path: str, **params) -> dict:
        with override_settings(ROOT_URLCONF="metis_site.urls"):  # the gateway fixture's is its own
            response = client.get(f"/analytics/{path}", params)
        assert response.status_code == 200, response.content
        assert response["Metis-API-Version"] == "1.0"
        return response.json()

    return get


def test_real_calls_through_the_gateway_show_in_every_endpoint(gateway, token, api):
    anthropic = {"x-api-key": token, "anthropic-version": "2023-06-01"}
    body = {"model": "claude-haiku-4-5", "max_tokens": 32, "messages": HELLO}
    for _ in range(2):
        assert httpx.post(f"{gateway.url}/v1/messages", json=body, headers=anthropic).is_success
    openai_body = {"model": "gpt-5-mini", "messages": HELLO}
    headers = {"authorization": f"Bearer {token}", "x-metis-user": "carol"}
    sent = httpx.post(f"{gateway.url}/v1/chat/completions", json=openai_body, headers=headers)
    assert sent.is_success
    events = gateway.events("llm.call_completed")
    expected = sum(Decimal(str(e["cost_usd"])) for e in events)

    cost = api("cost", window="1h", group_by="model")
    assert cost["totals"]["calls"] == 3
    assert Decimal(str(cost["totals"]["cost_usd"])) == expected > 0
    assert {g["key"] for g in cost["groups"]} == {"claude-haiku-4-5", "gpt-5-mini"}
    (key,) = api("by_key", window="1h")["keys"]
    assert (key["name"], key["user"], key["team"]) == ("alice-laptop", "alice", "eng")
    assert key["inbound_shapes"] == {"anthropic": 2, "openai": 1} and key["last_call_at"]
    # x-metis-user: carol labels a call of alice's key: it stays alice's, shown as a label.
    assert key["labels"] == {"carol": 1}
    users = {u["user"]: u["calls"] for u in api("by_user", window="1h")["users"]}
    assert users == {"alice": 3}
    (team,) = api("by_team", window="1h")["teams"]
    assert (team["team"], team["calls"], team["users"]) == ("eng", 3, 1)
    assert [(u["user"], u["calls"]) for u in team["by_user"]] == [("alice", 3)]
    calls = api("activity", window="1h")["calls"]
    assert [c["id"] for c in calls] == [e["id"] for e in reversed(events)]


def test_each_window_counts_the_calls_inside_it(api):
    now = datetime.now(UTC)
    ages = [timedelta(minutes=30), timedelta(hours=3), timedelta(days=2), timedelta(days=10),
            timedelta(days=40)]  # fmt: skip
    write([call_event(now - age) for age in ages])
    counts = {w: api("cost", window=w)["totals"]["calls"] for w in ("1h", "24h", "7d", "30d")}
    assert counts == {"1h": 1, "24h": 2, "7d": 3, "30d": 4}
    assert api("cost")["totals"]["calls"] == 2  # 24h unless told
    for path in ("by_key", "by_user", "by_team"):
        rows = next(iter(v for k, v in api(path, window="7d").items() if k != "window"))
        assert sum(r["calls"] for r in rows) == 3
    assert len(api("activity", window="7d")["calls"]) == 3


def test_from_and_to_are_half_open_and_exact_at_the_hour_edges(api):
    moments = [
        DAY + timedelta(hours=9, minutes=29),  # before from
        DAY + timedelta(hours=9, minutes=30),  # from: in (a partial hour, read from Call)
        DAY + timedelta(hours=10),  # whole hours (read from CallHour)
        DAY + timedelta(days=1, hours=5, minutes=17),
        DAY + timedelta(days=2, hours=10, minutes=29, seconds=59),  # partial hour at the end
        DAY + timedelta(days=2, hours=10, minutes=30),  # to: out
    ]
    write([call_event(m, cost=f"0.00{i}1") for i, m in enumerate(moments)])
    params = {"from": "2026-01-01T09:30:00Z", "to": "2026-01-03T10:30:00+00:00"}
    totals = api("cost", **params)["totals"]
    assert totals["calls"] == 4
    assert Decimal(str(totals["cost_usd"])) == Decimal("0.0011") + Decimal("0.0021") + Decimal(
        "0.0031"
    ) + Decimal("0.0041")
    assert api("cost", **{"from": "2026-01-02"})["totals"]["calls"] == 3  # to = now
    assert api("cost", **{"from": "2026-01-01", "to": "2026-01-01"})["totals"]["calls"] == 0


def owned_keys(*owners: str) -> list[str]:
    """One key per owner (a user made for it): the ids the events name."""
    return [make_key(user=make_user(username=owner))[0].id for owner in owners]


@pytest.mark.parametrize("group_by", GROUP_BY)
def test_each_group_by_splits_the_totals(api, group_by):
    k1, k2 = owned_keys("u1", "u2")
    rows = [
        call_event(DAY + timedelta(hours=1), model="m1", key=k1, user="u1", team="t1",
                   workspace="/w1", provider="anthropic", cost="0.5"),
        call_event(DAY + timedelta(hours=2), model="m2", key=k2, user="u2", team="t2",
                   workspace="/w2", provider="openai", cost="0.25"),
        call_event(DAY + timedelta(days=1, hours=2), model="m2", key=k2, user="u2",
                   team="t2", workspace="/w2", provider="openai", cost="0.5"),
    ]  # fmt: skip
    write(rows)
    result = api("cost", **{"from": "2026-01-01", "to": "2026-01-03", "group_by": group_by})
    assert result["group_by"] == group_by
    groups = result["groups"]
    assert sum(g["calls"] for g in groups) == result["totals"]["calls"] == 3
    if group_by in ("day", "hour"):
        assert [g["key"] for g in groups] == sorted(g["key"] for g in groups)
        assert len(groups) == (2 if group_by == "day" else 3)
    else:
        assert len(groups) == 2 and groups[0]["cost_usd"] == 0.75  # sorted by cost


def test_each_filter_narrows_the_numbers(api):
    k1, k2 = owned_keys("u1", "u2")
    write([
        call_event(DAY, key=k1, user="u1", team="t1", workspace="/w1"),
        call_event(DAY, key=k2, user="u2", team="t2", workspace="/w2"),
        call_event(DAY, key=k2, user="u3", team="t2", workspace="/w3"),  # x-metis-user: u3
    ])  # fmt: skip
    window = {"from": "2026-01-01", "to": "2026-01-02"}
    # user is the account (the keys it owns, whatever the label); label is x-metis-user.
    cases = [("gateway_key", k2, 2), ("user", "u1", 1), ("user", "u2", 2), ("team", "t2", 2),
             ("workspace", "/w3", 1), ("label", "u3", 1), ("user", "u3", 0),
             ("user", "nobody", 0)]  # fmt: skip
    for name, value, calls in cases:
        result = api("cost", **window, **{name: value})
        assert result["totals"]["calls"] == calls
        assert result["filters"] == {name: value}
        assert len(api("activity", **window, **{name: value})["calls"]) == calls


def test_unpriced_cancelled_and_failed_calls_are_counted_apart(api):
    write([
        call_event(DAY, cost=None),
        call_event(DAY, error_class="CANCELLED", output_tokens=3),
        call_event(DAY, status=502, error_class="UPSTREAM_ERROR", cost=None, output_tokens=0),
        call_event(DAY, cost="0.0000000001"),
    ])  # fmt: skip
    totals = api("cost", **{"from": "2026-01-01", "to": "2026-01-02"})["totals"]
    assert (totals["calls"], totals["unpriced_calls"], totals["cancelled"], totals["errors"]) == (
        4, 2, 1, 1,
    )  # fmt: skip
    assert Decimal(str(totals["cost_usd"])) == Decimal("0.0010000001")


@pytest.mark.parametrize(
    ("path", "params", "param"),
    [
        ("cost", {"window": "2w"}, "window"),
        ("cost", {"from": "yesterday"}, "from"),
        ("cost", {"from": "2026-01-02", "to": "2026-13-45"}, "to"),
        ("cost", {"from": "2026-01-03", "to": "2026-01-02"}, "from"),
        ("cost", {"window": "24h", "from": "2026-01-02"}, "window"),
        ("cost", {"to": "2026-01-02"}, "from"),
        ("cost", {"group_by": "colour"}, "group_by"),
        ("cost", {"window": "30d", "group_by": "hour"}, "group_by"),
        ("by_team", {"window": "1y"}, "window"),
        ("activity", {"page": "0"}, "page"),
        ("activity", {"page_size": "501"}, "page_size"),
        ("activity", {"page": "two"}, "page"),
        ("activity", {"page": str(2**62)}, "page"),  # past the database's 64-bit OFFSET
    ],
)
def test_bad_parameters_answer_422_naming_the_parameter(client, settings, db, path, params, param):
    settings.METIS_LOCAL_MODE = True
    response = client.get(f"/analytics/{path}", params)
    assert response.status_code == 422
    assert response["Metis-API-Version"] == "1.0"
    assert [e["loc"][-1] for e in response.json()["detail"]] == [param]


def test_the_api_version_is_negotiated_on_every_endpoint(client, settings, db):
    settings.METIS_LOCAL_MODE = True
    for path in ("/health", "/analytics/cost", "/analytics/by_key", "/analytics/activity"):
        assert client.get(path)["Metis-API-Version"] == "1.0"
        asked = client.get(path, headers={"Metis-API-Version": "1.0"})
        assert asked.status_code == 200 and asked["Metis-API-Version"] == "1.0"
        refused = client.get(path, headers={"Metis-API-Version": "9.9"})
        assert refused.status_code == 400 and refused["Metis-API-Version"] == "1.0"
        assert "9.9" in refused.json()["detail"]


def test_activity_is_newest_first_and_paged(api):
    events = write([call_event(DAY + timedelta(minutes=i)) for i in range(5)])
    window = {"from": "2026-01-01", "to": "2026-01-02", "page_size": 2}
    pages = [api("activity", **window, page=p) for p in (1, 2, 3)]
    assert [p["next_page"] for p in pages] == [2, 3, None]
    ids = [c["id"] for p in pages for c in p["calls"]]
    assert ids == [e.id for e in reversed(events)]
    newest = pages[0]["calls"][0]
    assert newest["cost_usd"] == 0.001
    assert (newest["user"], newest["label"]) == (None, "alice")  # gk_a is no key: no owner


def random_events(count: int, *, seed: int = 6) -> list:
    rng = random.Random(seed)
    return [
        call_event(
            DAY + timedelta(seconds=rng.randrange(3 * 86400)),
            key=rng.choice(["gk_1", "gk_2", "gk_3"]),
            user=rng.choice(["u1", "u2", None]),
            team=rng.choice(["t1", "t2", None]),
            model=rng.choice(["m1", "m2"]),
            shape=rng.choice(["anthropic", "openai"]),
            cost=rng.choice([None, f"0.{rng.randrange(10**10):010d}"]),
            latency_ms=rng.lognormvariate(6, 1),
            error_class=rng.choice([None, None, None, "CANCELLED", "UPSTREAM_ERROR"]),
        )
        for _ in range(count)
    ]


def hour_table() -> list[tuple]:
    return sorted(
        CallHour.objects.values_list(
            "hour", "gateway_key_id", "user", "team", "model", "inbound_shape", "calls",
            "errors", "cancelled", "cost_usd", "unpriced_calls", "input_tokens", "lat_10",
            "last_call_at",
        )
    )  # fmt: skip


def test_the_rollup_agrees_with_the_calls_and_rebuild_reproduces_it(api):
    events = random_events(400)
    write(events[:250])
    write(events[150:])  # a batch written twice (a spool replayed) is not counted twice
    assert Call.objects.count() == 400
    raw = Call.objects.aggregate(n=Count("id"), cost=Sum("cost_usd"), tokens=Sum("input_tokens"))
    rolled = CallHour.objects.aggregate(n=Sum("calls"), cost=Sum("cost_usd"),
                                        tokens=Sum("input_tokens"))  # fmt: skip
    daily = CallDay.objects.aggregate(n=Sum("calls"), cost=Sum("cost_usd"),
                                      tokens=Sum("input_tokens"))  # fmt: skip
    assert raw == rolled == daily
    before = hour_table(), sorted(CallDay.objects.values_list("day", "user", "calls", "cost_usd"))
    call_command("rebuild_rollups")
    after = hour_table(), sorted(CallDay.objects.values_list("day", "user", "calls", "cost_usd"))
    assert after == before and Call.objects.count() == 400

    # A long window (days, hours and partial hours) and the same numbers from the raw calls.
    parts = segments(datetime(2026, 1, 1, 7, 45, tzinfo=UTC),
                     datetime(2026, 1, 3, 16, 20, tzinfo=UTC))  # fmt: skip
    assert [source for source, _, _ in parts] == ["call", "call", "hour", "day", "hour"]
    params = {"from": "2026-01-01T07:45:00Z", "to": "2026-01-03T16:20:00Z"}
    totals = api("cost", **params)["totals"]
    start, end = datetime(2026, 1, 1, 7, 45, tzinfo=UTC), datetime(2026, 1, 3, 16, 20, tzinfo=UTC)
    inside = Call.objects.filter(timestamp__gte=start, timestamp__lt=end)
    assert totals["calls"] == inside.count()
    assert Decimal(str(totals["cost_usd"])) == inside.aggregate(c=Sum("cost_usd"))["c"]
    assert totals["unpriced_calls"] == inside.filter(cost_usd__isnull=True).count()
    assert totals["cancelled"] == inside.filter(error_class="CANCELLED").count()
    latencies = sorted(inside.values_list("latency_ms", flat=True))
    exact_p50 = latencies[len(latencies) // 2]
    assert abs(totals["p50_latency_ms"] - exact_p50) / exact_p50 < 0.42  # within a √2 bucket


def test_a_window_that_ends_now_reads_the_rest_of_its_last_day_whole():
    start, end = datetime(2026, 1, 1, 7, 45, tzinfo=UTC), datetime(2026, 1, 3, 16, 20, tzinfo=UTC)
    assert segments(start, end, until_now=True) == [
        ("call", start, datetime(2026, 1, 1, 8, tzinfo=UTC)),
        ("hour", datetime(2026, 1, 1, 8, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)),
        ("day", datetime(2026, 1, 2, tzinfo=UTC), datetime(2026, 1, 4, tzinfo=UTC)),
    ]
    # Per hour (no day table), the rest of its last hour.
    assert segments(start, end, days=False, until_now=True)[-1] == (
        "hour", datetime(2026, 1, 1, 8, tzinfo=UTC), datetime(2026, 1, 3, 17, tzinfo=UTC),
    )  # fmt: skip


def test_a_window_that_ends_now_reads_the_rest_of_its_last_week_whole_once_it_holds_its_monday():
    monday, saturday = datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 10, 16, 20, tzinfo=UTC)
    start = datetime(2025, 12, 31, 7, 45, tzinfo=UTC)
    assert segments(start, saturday, weeks=True, until_now=True) == [
        ("call", start, datetime(2025, 12, 31, 8, tzinfo=UTC)),
        ("hour", datetime(2025, 12, 31, 8, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)),
        ("day", datetime(2026, 1, 1, tzinfo=UTC), monday),
        ("week", monday, datetime(2026, 1, 12, tzinfo=UTC)),
    ]
    # From after its Monday, the week is not whole: its days so far, as before.
    later = datetime(2026, 1, 6, 7, 45, tzinfo=UTC)
    assert segments(later, saturday, weeks=True, until_now=True)[-1] == (
        "day", datetime(2026, 1, 7, tzinfo=UTC), datetime(2026, 1, 11, tzinfo=UTC),
    )  # fmt: skip
    # A window with an end of its own (not now) keeps its days.
    assert segments(start, saturday, weeks=True)[-2:] == [
        ("day", datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 10, tzinfo=UTC)),
        ("hour", datetime(2026, 1, 10, tzinfo=UTC), datetime(2026, 1, 10, 16, tzinfo=UTC)),
    ]


def test_windows_that_end_now_count_the_calls_just_made(api):
    now = datetime.now(UTC)
    ages = [timedelta(seconds=1), timedelta(minutes=61), timedelta(hours=25), timedelta(days=8)]
    costs = [Decimal("0.001"), Decimal("0.002"), Decimal("0.003"), Decimal("0.004")]
    write([call_event(now - age, key=f"gk_{i}", cost=str(cost))
           for i, (age, cost) in enumerate(zip(ages, costs, strict=True))])  # fmt: skip
    for window, calls in (("1h", 1), ("24h", 2), ("7d", 3), ("30d", 4)):
        totals = api("cost", window=window)["totals"]
        assert totals["calls"] == calls, window
        assert Decimal(str(totals["cost_usd"])) == sum(costs[:calls]), window
        keys = {g["key"]: g["calls"] for g in api("cost", window=window, group_by="key")["groups"]}
        assert keys == {f"gk_{i}": 1 for i in range(calls)}, window
        by_day = api("cost", window=window, group_by="day")["groups"]
        assert sum(g["calls"] for g in by_day) == calls, window
    since = {"from": (now - timedelta(hours=2)).isoformat()}  # no `to`: until now
    assert api("cost", **since)["totals"]["calls"] == 2


def narrow_tables() -> list[tuple]:
    return [
        sorted(table.objects.values_list(*columns, "calls", "cost_usd", "errors", "lat_12"))
        for table, columns in ((KeyDay, ("day", *KEY_GROUP)), (ModelDay, ("day", *MODEL_GROUP)),
                               (ModelHour, ("hour", *MODEL_GROUP)))
    ]  # fmt: skip


@pytest.mark.parametrize(
    "dims",
    [(), ("model",), ("provider",), ("team",), ("day",), ("hour",), ("gateway_key_id",),
     ("label",), ("workspace",), ("inbound_shape",), ("team", "gateway_key_id"),
     ("gateway_key_id", "inbound_shape", "team", "label")],
)  # fmt: skip
def test_every_grain_gives_what_the_full_rollup_gives(api, monkeypatch, dims):
    # The narrower rollups are read for most windows; over the same calls they must give
    # the full rollup's numbers, filtered or not, edges and all.
    events = random_events(300)
    write(events[:200])
    write(events[100:])
    start, end = datetime(2026, 1, 1, 7, 45, tzinfo=UTC), datetime(2026, 1, 3, 16, 20, tzinfo=UTC)
    filters = [{}, {"team": "t1"}, {"gateway_key": "gk_2"}, {"label": "u1"}]
    everyone = Viewer(kind="all")
    asked = [(Scope(start=start, end=end, **f), where) for f in filters
             for where in (None, Q(team__in=["t1", "t2"]))]  # fmt: skip
    narrow = {aggregate.grain_for(dims, everyone.q() & s.q() & (w or Q())) for s, w in asked}
    found = [aggregate.aggregate(everyone, s, dims, latency=True, where=w) for s, w in asked]
    monkeypatch.setattr(aggregate, "GRAINS", GRAINS[-1:])  # the full rollup only
    assert found == [
        aggregate.aggregate(everyone, s, dims, latency=True, where=w) for s, w in asked
    ]
    if not set(dims) & {"gateway_key_id", "label", "workspace"}:
        assert GRAINS[0] in narrow  # the model grain did serve
    # Rebuilt from the events, the narrower rollups come back the same.
    before = narrow_tables()
    call_command("rebuild_rollups")
    assert narrow_tables() == before and before[0]
