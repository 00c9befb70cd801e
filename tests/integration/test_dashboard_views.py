"""The dashboard's pages and htmx fragments (Django test client; CSV exports: test_exports.py).

Calls are recorded as events through the event writer, as the gateway records them, so
these tests run on `transactional_db` (the writer's thread has its own connection)."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from identity.models import Quota, TeamMembership
from tests.calls import record_calls
from tests.factories import make_key, make_team, make_user

pytestmark = pytest.mark.usefixtures("transactional_db")


@pytest.fixture
def spend() -> dict:
    """eng (alice $0.60, bob $0.10) outspends sales (carol $0.20): eng holds 78 %."""
    eng, sales = make_team(name="eng"), make_team(name="sales")
    alice, bob, carol = (make_user(username=n) for n in ("alice", "bob", "carol"))
    keys = {
        "alice": make_key(name="alice-laptop", user=alice, team=eng)[0],
        "bob": make_key(name="bob-laptop", user=bob, team=eng)[0],
        "carol": make_key(name="carol-laptop", user=carol, team=sales)[0],
    }
    record_calls(keys["alice"], count=6, cost_usd="0.10")
    record_calls(keys["bob"], count=2, cost_usd="0.05", inbound_shape="openai", model="gpt-5-mini")
    record_calls(keys["carol"], count=4, cost_usd="0.05")
    return {"teams": {"eng": eng, "sales": sales}, "users": (alice, bob, carol), "keys": keys}


def get(client, url: str, **headers: str):
    response = client.get(url, **headers)
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


def test_the_dashboard_needs_a_login_outside_local_mode(client, settings):
    settings.METIS_LOCAL_MODE = False
    response = client.get("/dashboard/?tab=activity")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/dashboard/%3Ftab%3Dactivity"
    assert client.get("/dashboard/export/keys.csv").status_code == 302


def test_local_mode_shows_the_dashboard_without_a_login(client, settings, spend):
    settings.METIS_LOCAL_MODE = True
    page = get(client, "/dashboard/")
    assert "Metis · Dashboard" in page and "$0.90" in page


def test_a_page_past_the_last_is_an_empty_page_not_an_error(admin_client):
    for page in ("999", "9" * 25):  # the second overflowed the database's OFFSET: a 500
        assert "metis gateway issue-key" in get(
            admin_client, f"/dashboard/?tab=activity&page={page}"
        )


def test_an_empty_dashboard_says_what_to_do_next(admin_client):
    for tab in ("cost", "activity", "identity"):
        page = get(admin_client, f"/dashboard/?tab={tab}")
        assert "metis gateway issue-key" in page and "http://127.0.0.1:8422" in page


def test_a_tab_switch_over_htmx_returns_only_the_panel(admin_client, spend):
    fragment = get(
        admin_client,
        "/dashboard/?tab=identity",
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="dashboard-panel",
    )
    assert fragment.lstrip().startswith('<div id="dashboard-panel"')
    assert "<html" not in fragment and "Per-team spend" in fragment


def test_a_scope_pill_over_htmx_returns_only_the_identity_tables(admin_client, spend):
    fragment = get(
        admin_client,
        "/dashboard/?tab=identity&view=user",
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="identity-tables",
    )
    assert fragment.lstrip().startswith('<div id="identity-tables"')
    assert "Per-user spend" in fragment and "Per-team spend" not in fragment


def test_team_rows_fetch_their_users_when_expanded(admin_client, spend):
    page = get(admin_client, "/dashboard/?tab=identity&view=team&window=7d&sort=calls")
    eng_row = page[page.index('data-team="eng"') : page.index('data-team="sales"')]
    assert 'data-user="alice"' not in page  # not rendered until asked for
    url = re.search(r'hx-get="(/dashboard/team/[^"]+)"', eng_row).group(1).replace("&amp;", "&")
    assert url == "/dashboard/team/?window=7d&sort=calls&team=eng&row=team-1"
    rows = get(admin_client, url, HTTP_HX_REQUEST="true")
    # alice made more calls than bob: first by calls, each a link filtering Cost on them
    assert rows.index('data-parent="team-1" data-user="alice"') < rows.index('data-user="bob"')
    assert "carol" not in rows
    assert "?window=7d&amp;tab=cost&amp;user=alice" in rows
    assert rows.count("<tr") == 2 and "$0.60" in rows and "$0.10" in rows


def test_the_keys_with_no_team_fetch_their_owners(admin_client, spend):
    loner = make_user(username="dave")
    record_calls(make_key(name="dave-laptop", user=loner)[0], count=1, cost_usd="0.01")
    page = get(admin_client, "/dashboard/?tab=identity&view=team")
    url = re.search(r'hx-get="(/dashboard/team/\?team=&amp;row=team-3)"', page).group(1)
    rows = get(admin_client, url.replace("&amp;", "&"))
    assert 'data-user="dave"' in rows and "alice" not in rows and rows.count("<tr") == 1


@pytest.mark.parametrize(
    "query",
    [
        "team=eng&row=evil",
        "team=eng",
        "team=eng&row=team-1&window=fortnight",
        "team=e%00&row=team-1",
    ],
)
def test_team_members_refuse_bad_parameters(admin_client, spend, query):
    response = admin_client.get(f"/dashboard/team/?{query}")
    assert response.status_code == 400


def test_a_user_filter_scopes_cost_and_activity_with_a_chip(admin_client, spend):
    everyone = get(admin_client, "/dashboard/")
    assert 'id="total-calls">12<' in everyone and 'data-filter="user"' not in everyone
    alice = get(admin_client, "/dashboard/?user=alice")
    assert 'data-filter="user"' in alice and "<b>alice</b>" in alice
    assert 'id="total-calls">6<' in alice and tile(alice, "total-cost") == "$0.60"
    activity = get(admin_client, "/dashboard/?tab=activity&user=alice")
    assert "alice-laptop" in activity and "carol-laptop" not in activity


def test_the_top_team_callout_appears_only_above_half_the_spend(admin_client, spend):
    page = get(admin_client, "/dashboard/?tab=identity")
    assert 'id="top-team"' in page and "78%" in page
    record_calls(spend["keys"]["carol"], count=5, cost_usd="0.10")  # eng and sales: $0.70 each
    page = get(admin_client, "/dashboard/?tab=identity")
    assert 'id="top-team"' not in page


def test_keys_show_inbound_shapes_last_call_and_their_own_quota(admin_client, spend):
    Quota.objects.create(key=spend["keys"]["bob"], period="month", hard_cap_usd=Decimal("0"))
    page = get(admin_client, "/dashboard/?tab=identity&view=key")
    assert "openai 2" in page and "anthropic 6" in page and "s ago" in page
    rows = {name: row_of(page, f'data-key="{name}"') for name in ("alice-laptop", "bob-laptop")}
    assert "quota-hard" in rows["bob-laptop"] and "100 %" in rows["bob-laptop"]  # $0 blocks it
    assert "quota-" not in rows["alice-laptop"] and "—" in rows["alice-laptop"]


def row_of(page: str, marker: str) -> str:
    start = page.index(marker)
    return page[start : page.index("</tr>", start)]


def tile(page: str, element_id: str) -> str:
    """The text of a number on the page, without the markup around it."""
    match = re.search(rf'id="{element_id}">(.*?)</b>', page, re.S)
    assert match, element_id
    return re.sub(r"<[^>]+>", "", match.group(1)).strip()


def test_a_bad_window_is_refused_naming_the_parameter(admin_client):
    response = admin_client.get("/dashboard/?window=3y")
    assert response.status_code == 400 and b"window" in response.content


def test_a_budget_owner_sees_their_team_and_not_the_others(client, settings, spend):
    settings.METIS_LOCAL_MODE = False
    alice = spend["users"][0]
    TeamMembership.objects.create(
        user=alice, team=spend["teams"]["eng"], role=TeamMembership.Role.BUDGET_OWNER
    )
    assert client.get("/dashboard/team/?team=eng&row=team-1").status_code == 302  # to login
    client.force_login(alice)
    page = get(client, "/dashboard/?tab=identity")
    assert "bob-laptop" in page and "carol-laptop" not in page
    assert 'data-user="bob"' in get(client, "/dashboard/team/?team=eng&row=team-1")
    assert "carol" not in get(client, "/dashboard/team/?team=sales&row=team-2")


def test_long_tables_and_many_budgets_show_their_first_rows_and_say_where_the_rest_are(
    client, settings, spend, monkeypatch
):
    # A company's 2,000 keys and hundreds of budgets are no page to read (nor to render):
    # each table shows its first rows in the chosen order, the strip its fullest budgets.
    from analytics import views

    settings.METIS_LOCAL_MODE = True
    monkeypatch.setattr(views, "TABLE_ROWS", 2)
    monkeypatch.setattr(views, "STRIP_CARDS", 2)
    page = get(client, "/dashboard/?tab=identity&view=key&sort=calls")
    assert re.findall(r'<tr data-key="([^"]+)"', page) == ["alice-laptop", "carol-laptop"]
    assert "The first 2 of 3 keys, by calls; the" in page
    assert 'href="/dashboard/export/keys.csv?' in page
    teams = get(client, "/dashboard/?tab=identity&view=team")
    assert 'id="more-teams"' not in teams  # two teams: all shown
    for name, cap in (("eng", "9"), ("sales", "1"), ("carol", "5")):
        owner = {"eng": "teams", "sales": "teams", "carol": "users"}[name]
        target = spend[owner][name] if owner == "teams" else spend["users"][2]
        field = "team" if owner == "teams" else "user"
        Quota.objects.create(**{field: target}, period="month", hard_cap_usd=Decimal(cap))
    cost = get(client, "/dashboard/")
    shown = re.findall(r'<article class="budget[^"]*" data-scope="(\w+)" data-name="([^"]+)"', cost)
    assert shown == [("team", "sales"), ("team", "eng")]  # 20 % and 7.8 % used; carol 4 %
    assert "And 1 less used budget: <i>Spend by identity</i>" in cost
