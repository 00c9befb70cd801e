"""CSV exports: complete and streamed, named and stamped with their window and filter,
numeric where they are numbers, safe to open in a spreadsheet, scoped like the dashboard.

The body is read the way the ASGI server reads it (the response's async iterator), in the
test's thread, so the export's queries see the test's rows."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from django.utils import timezone

from analytics import exports
from identity.models import Quota, TeamMembership
from tests.calls import record_calls
from tests.factories import make_key, make_team, make_user

pytestmark = pytest.mark.usefixtures("transactional_db")


def read(response) -> tuple[list[bytes], list[dict]]:
    """The streamed chunks and the CSV rows they make."""
    assert response.status_code == 200, getattr(response, "content", b"")[:300]
    assert response.streaming and response.is_async

    async def chunks() -> list[bytes]:
        return [chunk async for chunk in response.streaming_content]

    parts = async_to_sync(chunks)()
    text = b"".join(parts).decode("utf-8-sig")
    return parts, list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def spend() -> dict:
    eng, sales = make_team(name="eng"), make_team(name="sales")
    alice, bob, carol = (make_user(username=n) for n in ("alice", "bob", "carol"))
    keys = {
        "alice": make_key(name="alice-laptop", user=alice, team=eng),
        "bob": make_key(name="bob-laptop", user=bob, team=eng),
        "carol": make_key(name="carol-laptop", user=carol, team=sales),
    }
    record_calls(keys["alice"][0], count=6, cost_usd="0.10")
    record_calls(keys["bob"][0], count=2, cost_usd="0.05", model="gpt-5-mini")
    record_calls(keys["carol"][0], count=4, cost_usd="0.05")
    return {"teams": (eng, sales), "users": (alice, bob, carol), "keys": keys}


@pytest.mark.parametrize(
    ("table", "first"),
    [
        ("models", "model"),
        ("teams", "team"),
        ("users", "user"),
        ("keys", "gateway_key_id"),
        ("activity", "timestamp"),
    ],
)
def test_each_table_exports_as_csv_with_its_window(admin_client, spend, table, first) -> None:
    response = admin_client.get(f"/dashboard/export/{table}.csv?window=7d")

    _, rows = read(response)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    header = list(rows[0])
    assert header[0] == first and header[-3:] == list(exports.SCOPE)
    assert rows and all(r["window_from"] < r["window_to"] and r["filters"] == "" for r in rows)


def test_an_export_of_more_than_ten_thousand_calls_is_complete_and_streamed(
    admin_client,
) -> None:
    key, _ = make_key(name="busy")
    record_calls(key, count=10_050, cost_usd="0.0001")

    parts, rows = read(admin_client.get("/dashboard/export/activity.csv?window=1h"))

    assert len(rows) == 10_050
    assert len({r["id"] for r in rows}) == 10_050
    assert [r["timestamp"] for r in rows] == sorted((r["timestamp"] for r in rows), reverse=True)
    # Many chunks, not one body built in memory.
    assert len(parts) > 10_050 // exports.CHUNK


def test_the_file_name_and_rows_carry_the_window_and_the_filter(admin_client, spend) -> None:
    today = timezone.now().date()
    start, end = today - timedelta(days=2), today + timedelta(days=1)

    response = admin_client.get(
        f"/dashboard/export/activity.csv?from={start}&to={end}&team=eng&user=bob"
    )

    _, rows = read(response)
    assert response["Content-Disposition"] == (
        f'attachment; filename="metis-activity-{start}_to_{end}-user-bob-team-eng.csv"'
    )
    assert len(rows) == 2 and {(r["user"], r["team"]) for r in rows} == {("bob", "eng")}
    assert {(r["window_from"], r["window_to"], r["filters"]) for r in rows} == {
        (f"{start}T00:00:00Z", f"{end}T00:00:00Z", "user=bob; team=eng")
    }


def test_a_rolling_window_is_named_to_the_minute(admin_client, spend) -> None:
    response = admin_client.get("/dashboard/export/models.csv?window=24h&gateway_key=gk_x/../y")

    read(response)
    name = response["Content-Disposition"].split('"')[1]
    day = r"\d{4}-\d\d-\d\dT\d{4}Z"
    assert re.fullmatch(rf"metis-models-{day}_to_{day}-gateway_key-gk_x_\.\._y\.csv", name)


def test_budget_columns_are_plain_numbers(admin_client, spend) -> None:
    eng = spend["teams"][0]
    Quota.objects.create(team=eng, period="month", soft_cap_usd=1, hard_cap_usd=10)

    _, rows = read(admin_client.get("/dashboard/export/teams.csv?window=7d"))

    row = next(r for r in rows if r["team"] == "eng")
    assert Decimal(row["cost_usd"]) == Decimal("0.7")
    assert (row["budget_period"], row["budget_state"]) == ("month", "ok")
    assert Decimal(row["budget_spent_usd"]) == Decimal("0.7")
    assert Decimal(row["budget_soft_cap_usd"]) == 1 and Decimal(row["budget_hard_cap_usd"]) == 10
    assert Decimal(row["budget_used_pct"]) == Decimal("7")
    assert row["budget_resets_at"].endswith("Z")
    sales = next(r for r in rows if r["team"] == "sales")
    assert sales["budget_used_pct"] == "" and sales["budget_period"] == ""
    assert not any("$" in v or "%" in v for r in rows for v in r.values())


def test_cells_a_spreadsheet_would_run_are_escaped(admin_client) -> None:
    team = make_team(name="+team")
    key, _ = make_key(name='=HYPERLINK("http://evil")', team=team)
    record_calls(key, count=1, user="@SUM(A1)", model="-model")
    record_calls(key, count=1, user="\tlabel")

    _, calls = read(admin_client.get("/dashboard/export/activity.csv?window=1h"))
    _, keys = read(admin_client.get("/dashboard/export/keys.csv?window=1h"))

    assert {c["label"] for c in calls} == {"'@SUM(A1)", "'\tlabel"}
    assert {c["model"] for c in calls} == {"'-model", "claude-haiku-4-5"}
    assert {c["team"] for c in calls} == {"'+team"}
    assert keys[0]["name"] == '\'=HYPERLINK("http://evil")'
    assert keys[0]["calls"] == "2"


def test_numeric_cells_stay_numbers_even_when_negative() -> None:
    assert exports.cell("cost_usd", Decimal("-1.2500000000")) == "-1.25"
    assert exports.cell("latency_ms", -3.5) == -3.5
    assert exports.cell("user", "-1.25") == "'-1.25"
    assert exports.cell("model", "gpt-5") == "gpt-5"


def test_a_developer_exports_only_their_own_calls(client, settings, spend) -> None:
    settings.METIS_LOCAL_MODE = False
    client.force_login(spend["users"][1])  # bob

    _, calls = read(client.get("/dashboard/export/activity.csv?window=1h"))
    _, keys = read(client.get("/dashboard/export/keys.csv?window=1h"))

    assert len(calls) == 2 and {c["key_name"] for c in calls} == {"bob-laptop"}
    assert [k["name"] for k in keys] == ["bob-laptop"]


def test_a_budget_owner_exports_their_team_and_not_the_others(client, settings, spend) -> None:
    settings.METIS_LOCAL_MODE = False
    alice = spend["users"][0]
    TeamMembership.objects.create(user=alice, team=spend["teams"][0], role="budget_owner")
    client.force_login(alice)

    _, calls = read(client.get("/dashboard/export/activity.csv?window=1h"))
    _, teams = read(client.get("/dashboard/export/teams.csv?window=1h"))

    assert len(calls) == 8 and {c["team"] for c in calls} == {"eng"}
    assert [t["team"] for t in teams] == ["eng"]


def test_a_gateway_token_exports_its_own_key_only(client, settings, spend) -> None:
    settings.METIS_LOCAL_MODE = False
    _, carol_token = spend["keys"]["carol"]

    response = client.get(
        "/dashboard/export/activity.csv?window=1h", HTTP_AUTHORIZATION=f"Bearer {carol_token}"
    )

    _, calls = read(response)
    assert len(calls) == 4 and {c["key_name"] for c in calls} == {"carol-laptop"}


def test_anonymous_exports_go_to_the_login_like_the_dashboard(client, settings) -> None:
    settings.METIS_LOCAL_MODE = False

    response = client.get("/dashboard/export/activity.csv?window=1h")

    assert response.status_code == 302 and "/login/" in response["Location"]
    dashboard = client.get("/dashboard/")
    assert dashboard["Location"].split("?")[0] == response["Location"].split("?")[0]


def test_unknown_tables_and_bad_windows_are_refused_plainly(admin_client) -> None:
    assert admin_client.get("/dashboard/export/passwords.csv").status_code == 404
    bad = admin_client.get("/dashboard/export/activity.csv?window=3y")
    assert bad.status_code == 400 and b"window" in bad.content
