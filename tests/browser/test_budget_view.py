"""The dashboard as a budget owner and a developer see it, in the real Chromium: the budget
strip, each person's own scope, a phone's width, keyboard focus, sorting, the chart's
tooltip and axe-core's accessibility checks.

People sign in with a Django session made by the test client (`force_login`), its cookie
handed to the browser: the sign-in page itself is tested where it is built."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client
from playwright.sync_api import expect

from identity.models import Quota, TeamMembership
from tests.calls import record_calls
from tests.factories import make_key, make_team, make_user

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("transactional_db")]

TABS = ("/dashboard/", "/dashboard/?tab=activity", "/dashboard/?tab=identity",
        "/dashboard/?tab=identity&view=key")  # fmt: skip


@pytest.fixture
def world(settings) -> dict:
    """eng (budget owner olga, developers dana and dan) and sales (sam). A monthly $1 hard
    cap on eng with a $0.50 soft cap, a daily $0.10 cap on dana. Every person's key calls,
    and sam's key calls as "dana" (a label: it must stay sam's)."""
    settings.METIS_LOCAL_MODE = False
    eng, sales = make_team(name="eng"), make_team(name="sales")
    people = {n: make_user(username=n) for n in ("olga", "dana", "dan", "sam")}
    TeamMembership.objects.create(user=people["olga"], team=eng, role="budget_owner")
    keys = {}
    for name, team in (("dana", eng), ("dan", eng), ("sam", sales)):
        TeamMembership.objects.create(user=people[name], team=team)
        keys[name] = make_key(name=f"{name}-laptop", user=people[name], team=team)[0]
    record_calls(keys["dana"], count=3, cost_usd="0.02")
    record_calls(keys["dan"], count=1, cost_usd="0.30")
    record_calls(keys["sam"], count=2, cost_usd="0.25", user="dana")
    Quota.objects.create(
        team=eng, period="month", soft_cap_usd=Decimal("0.5"), hard_cap_usd=Decimal("1")
    )
    Quota.objects.create(user=people["dana"], period="day", hard_cap_usd=Decimal("0.10"))
    return {"people": people, "keys": keys}


def sign_in(page, live_server, user) -> None:
    client = Client()
    client.force_login(user)
    cookie = client.cookies["sessionid"]
    page.context.add_cookies([{"name": "sessionid", "value": cookie.value, "url": live_server.url}])


def test_a_budget_owner_opens_on_this_month_with_their_teams_budget(page, live_server, world):
    sign_in(page, live_server, world["people"]["olga"])
    page.goto("/dashboard/")
    expect(page.locator("#window-this_month")).to_have_attribute("aria-current", "true")
    card = page.locator('#budget-strip .budget[data-name="eng"]')
    expect(card).to_contain_text("$0.36")  # dana's three calls and dan's one
    expect(card).to_contain_text("of $1.00")
    expect(card).to_contain_text("hard cap")
    expect(card).to_contain_text("36 % used")
    expect(card).to_contain_text("Resets")
    expect(page.locator("#budget-strip .budget")).to_have_count(1)  # not sales, not dana's
    expect(page.locator("#total-calls")).to_have_text("4")
    page.goto("/dashboard/?tab=identity&view=team")
    expect(page.locator("#teams tr.team")).to_have_count(1)
    expect(page.locator("#teams")).not_to_contain_text("sales")


def test_a_developer_sees_only_their_own_keys_whatever_the_labels_say(page, live_server, world):
    sign_in(page, live_server, world["people"]["dana"])
    page.goto("/dashboard/")
    expect(page.locator("#window-24h")).to_have_attribute("aria-current", "true")
    expect(page.locator("#total-calls")).to_have_text("3")  # not sam's calls labelled dana
    card = page.locator('#budget-strip .budget[data-name="dana"]')
    expect(card).to_contain_text("$0.06")
    expect(card).to_contain_text("60 % used")
    page.goto("/dashboard/?tab=identity&view=key")
    expect(page.locator("#keys tbody tr")).to_have_count(1)
    expect(page.locator("#keys")).to_contain_text("dana-laptop")
    page.goto("/dashboard/?tab=activity")
    expect(page.locator("#activity")).not_to_contain_text("sam-laptop")


def test_a_scope_with_no_budget_says_so(page, live_server, world):
    sign_in(page, live_server, world["people"]["sam"])
    page.goto("/dashboard/")
    expect(page.locator("#no-budget")).to_contain_text("No budget applies")
    page.goto("/dashboard/?tab=identity&view=key")
    expect(page.locator("#keys")).to_contain_text("dana")  # the label, under sam's key


def test_a_phone_never_scrolls_sideways(browser, live_server, world):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 390, "height": 844})
    page = context.new_page()
    sign_in(page, live_server, make_user(username="root", is_superuser=True))
    for url in (*TABS, "/dashboard/?window=1h", "/dashboard/?tab=identity&view=team"):
        page.goto(url)
        width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], (url, width)
    page.goto("/dashboard/?tab=identity&view=key")
    budget = page.locator("#keys thead th", has_text="Budget used")
    expect(budget).to_be_in_viewport()
    context.close()


def test_axe_finds_nothing_serious_on_any_tab(page, live_server, world):
    from axe_playwright_python.sync_playwright import Axe

    sign_in(page, live_server, world["people"]["olga"])
    axe = Axe()
    for url in (*TABS, "/dashboard/?tab=identity&view=team&sort=budget"):
        page.goto(url)
        results = axe.run(page)
        serious = [
            (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
            for v in results.response["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        assert serious == [], (url, serious)


SETTLED = "() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')"


def test_focus_stays_on_the_control_used_after_a_swap(page, live_server, world):
    sign_in(page, live_server, world["people"]["olga"])
    page.goto("/dashboard/")
    for control in ("#tab-identity", "#view-key", "#sort-name", "#window-7d", "#tab-cost"):
        # The previous swap must have settled: a key pressed mid-swap lands on the old element.
        page.wait_for_function(SETTLED)
        page.locator(control).focus()
        page.keyboard.press("Enter")
        expect(page.locator(control)).to_have_attribute("aria-current", ["true", "page"][
            control.startswith("#tab")])  # fmt: skip
        expect(page.locator(control)).to_be_focused()


def test_sorting_is_a_control(page, live_server, world):
    sign_in(page, live_server, make_user(username="root", is_superuser=True))
    page.goto("/dashboard/?tab=identity&view=key")
    names = page.locator("#keys tbody tr[data-key]")
    expect(names.first).to_have_attribute("data-key", "sam-laptop")  # the biggest spender
    page.locator("#sort-name").click()
    expect(page.locator("#sort-name")).to_have_attribute("aria-current", "true")
    expect(names.first).to_have_attribute("data-key", "dan-laptop")
    page.locator("#sort-calls").click()
    expect(names.first).to_have_attribute("data-key", "dana-laptop")  # three calls
    page.locator("#sort-budget").click()
    expect(names.first).to_have_attribute("data-key", "sam-laptop")  # no key has a budget
    page.goto("/dashboard/?tab=identity&view=user&sort=budget")
    expect(page.locator("#users tbody tr").first).to_have_attribute("data-user", "dana")


def test_the_chart_tooltip_answers_keyboard_and_touch(page, live_server, world):
    sign_in(page, live_server, world["people"]["olga"])
    page.goto("/dashboard/?window=1h")
    bar = page.locator("#cost-chart rect.bar").first
    tip = page.locator("#cost-chart .tip")
    expect(tip).to_be_hidden()
    bar.focus()
    expect(tip).to_be_visible()
    expect(tip).to_contain_text("$0.36")
    page.keyboard.press("Escape")
    expect(tip).to_be_hidden()
    bar.dispatch_event("click")  # a tap
    expect(tip).to_be_visible()
    expect(page.locator("#cost-chart .y-axis")).to_contain_text("$")
    expect(page.locator("#cost-chart figcaption")).to_contain_text("Times in UTC")
    # eng's $1 a month, per 2 minutes: the pace the bars are measured against
    expect(page.locator("#pace-line")).to_contain_text("eng's budget pace")
    expect(page.locator("#cost-chart line.pace")).to_have_count(1)
