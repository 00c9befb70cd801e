"""The dashboard swaps a browser must prove: login, tabs, expanding a team, filtering
by a user, and the Top callout appearing only above half the spend."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.calls import record_calls
from tests.factories import make_key, make_team, make_user

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("transactional_db")]


def seed(*, eng_alice: int, eng_bob: int, sales_carol: int) -> None:
    """Calls at $0.10 each per developer, through the event writer."""
    eng, sales = make_team(name="eng"), make_team(name="sales")
    for username, team, count in (
        ("alice", eng, eng_alice),
        ("bob", eng, eng_bob),
        ("carol", sales, sales_carol),
    ):
        key, _ = make_key(name=f"{username}-laptop", user=make_user(username=username), team=team)
        record_calls(key, count=count, cost_usd="0.10")


@pytest.fixture
def local_mode(settings) -> None:
    settings.METIS_LOCAL_MODE = True


def test_a_login_leads_to_the_dashboard_and_its_tabs_switch(page, admin_user, settings):
    settings.METIS_LOCAL_MODE = False
    seed(eng_alice=3, eng_bob=1, sales_carol=1)
    page.goto("/dashboard/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/dashboard/$"))
    page.fill("#id_username", "admin")
    page.fill("#id_password", "password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#total-calls")).to_have_text("5")
    page.get_by_role("link", name="Activity").click()
    expect(page.locator("#activity")).to_contain_text("alice-laptop")
    expect(page).to_have_url(re.compile(r"/dashboard/\?tab=activity$"))
    page.get_by_role("link", name="Spend by identity").click()
    expect(page.locator("#teams")).to_be_visible()
    page.get_by_role("link", name="Per-key").click()
    expect(page.locator("#keys")).to_contain_text("bob-laptop")
    expect(page.locator("#teams")).to_have_count(0)


def test_a_team_row_expands_inline_to_its_users(page, local_mode):
    seed(eng_alice=3, eng_bob=1, sales_carol=1)
    page.goto("/dashboard/?tab=identity&view=team")
    alice = page.locator("#teams tr.sub", has_text="alice")
    expect(alice).to_be_hidden()
    page.locator("#teams button.expand", has_text="eng").click()
    expect(alice).to_be_visible()
    expect(page.locator("#teams tr.sub", has_text="bob")).to_be_visible()
    expect(page.locator("#teams tr.sub", has_text="carol")).to_be_hidden()


def test_filtering_by_a_user_shows_a_chip_and_scopes_the_numbers(page, local_mode):
    seed(eng_alice=3, eng_bob=1, sales_carol=2)
    page.goto("/dashboard/?tab=identity&view=user")
    page.locator("#users tr[data-user=carol]").get_by_role("link", name="filter").click()
    chip = page.locator('.chip[data-filter="user"]')
    expect(chip).to_contain_text("carol")
    expect(page.locator("#total-calls")).to_have_text("2")
    expect(page.locator("#total-cost")).to_have_text("$0.20")
    chip.get_by_role("link").click()
    expect(chip).to_have_count(0)
    expect(page.locator("#total-calls")).to_have_text("6")


def test_the_top_callouts_appear_above_half_the_spend(page, local_mode):
    seed(eng_alice=6, eng_bob=1, sales_carol=1)
    page.goto("/dashboard/?tab=identity")
    expect(page.locator("#top-team")).to_contain_text("eng")
    expect(page.locator("#top-user")).to_contain_text("alice")
    expect(page.locator("#top-key")).to_contain_text("alice-laptop")


def test_no_top_callout_when_spend_is_spread(page, local_mode):
    seed(eng_alice=2, eng_bob=1, sales_carol=3)
    page.goto("/dashboard/?tab=identity")
    expect(page.locator("#teams")).to_be_visible()
    expect(page.locator(".callout")).to_have_count(0)
