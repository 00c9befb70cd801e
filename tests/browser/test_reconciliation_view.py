"""The dashboard's Reconciliation tab in the real Chromium: who gets it, what a day over the
drift threshold looks like, the htmx swap into it, a phone's width and axe-core's checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from identity.models import TeamMembership
from reconcile.models import Reconciliation
from tests.browser.test_budget_view import SETTLED, sign_in
from tests.factories import make_team, make_user

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("transactional_db")]

TODAY = datetime.now(UTC).date()
URL = "/dashboard/?tab=reconciliation&window=7d"


@pytest.fixture
def people(settings) -> dict:
    """Budget owner olga and developer dana of eng; today is 5.88 % over on Anthropic
    (250 tokens that bypassed Metis), yesterday reconciles to 0."""
    settings.METIS_LOCAL_MODE = False
    eng = make_team(name="eng")
    olga, dana = make_user(username="olga"), make_user(username="dana")
    TeamMembership.objects.create(user=olga, team=eng, role="budget_owner")
    TeamMembership.objects.create(user=dana, team=eng)
    rows = (
        (TODAY, "claude-haiku-4-5", "0.0100", "0.0125", 250),
        (TODAY, "claude-sonnet-4-5", "0.0300", "0.0300", 0),
        (TODAY - timedelta(days=1), "claude-haiku-4-5", "0.0200", "0.0200", 0),
    )
    for day, model, gateway, provider, bypass in rows:
        Reconciliation.objects.create(
            day=day, upstream="anthropic", provider="anthropic", api_key_id="apikey_01",
            model=model, gateway_cost_usd=Decimal(gateway), provider_cost_usd=Decimal(provider),
            drift_usd=Decimal(provider) - Decimal(gateway), bypass_tokens=bypass,
            gateway_input_tokens=1000, provider_input_tokens=1000 + bypass,
        )  # fmt: skip
    return {"olga": olga, "dana": dana}


def test_a_budget_owner_sees_the_day_over_the_threshold_and_its_bypass(page, live_server, people):
    sign_in(page, live_server, people["olga"])
    page.goto("/dashboard/?window=7d")
    page.locator("#tab-reconciliation").click()  # an htmx swap, not a page load
    page.wait_for_function(SETTLED)
    expect(page).to_have_url(f"{live_server.url}/dashboard/?window=7d&tab=reconciliation")
    expect(page.locator("#tab-reconciliation")).to_have_attribute("aria-current", "page")
    expect(page.locator("#recon-bypass")).to_have_text("250")
    expect(page.locator("#recon-over")).to_have_text("1")
    over = page.locator(f'tr.day-row[data-day="{TODAY.isoformat()}"]')
    expect(over).to_have_class("day-row over-threshold")
    expect(over.locator(".drift")).to_contain_text("6 %")
    yesterday = page.locator(f'tr.day-row[data-day="{(TODAY - timedelta(days=1)).isoformat()}"]')
    expect(yesterday).not_to_have_class("day-row over-threshold")
    expect(page.locator("tr.model-row")).to_have_count(3)


def test_a_developer_has_no_reconciliation_tab(page, live_server, people):
    sign_in(page, live_server, people["dana"])
    page.goto(URL)
    expect(page.locator("#tab-reconciliation")).to_have_count(0)
    expect(page.locator("#tab-cost")).to_have_attribute("aria-current", "page")


def test_with_nothing_reconciled_the_tab_says_how_to_start(page, live_server, people):
    Reconciliation.objects.all().delete()
    sign_in(page, live_server, people["olga"])
    page.goto(URL)
    expect(page.locator("#recon-empty")).to_contain_text("metis manage reconcile")


def test_a_phone_never_scrolls_sideways_and_axe_finds_nothing_serious(browser, live_server, people):
    from axe_playwright_python.sync_playwright import Axe

    context = browser.new_context(base_url=live_server.url, viewport={"width": 390, "height": 844})
    page = context.new_page()
    sign_in(page, live_server, make_user(username="root", is_superuser=True))
    page.goto(URL)
    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], width
    results = Axe().run(page)
    serious = [
        (v["id"], [n["target"] for n in v["nodes"]][:3])
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert serious == []
    context.close()
