"""The Cost tab's prompt-cache figures in a real browser: the tiles and the per-team, key
and model tables, to the exact amount behind each rounded one."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from analytics.usage import Usage
from analytics.writer import writer
from gateway.calls import events_from, priced
from tests.factories import make_key, make_team, make_user

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("transactional_db")]


def record(key, model: str, provider: str, usage: Usage) -> None:
    """One call, priced and made into events by the gateway's own code."""
    cost, source, cache = priced(provider, model, usage)
    described = {
        "request_id": f"req-{key.name}-{model}", "gateway_key_id": key.id,
        "user": key.user.username, "team": key.team.name, "workspace": "",
        "inbound_shape": "anthropic", "provider": provider, "model": model,
        "requested_model": model, "key_name": key.name, "key_owner": key.user.username,
        "stream": False, "decided_by": "model", "dropped_params": [], "operation": "chat",
    }  # fmt: skip
    writer.submit(
        events_from(
            described,
            usage=usage,
            cost_usd=cost,
            price_source=source,
            cache_costs=cache,
            latency_ms=100.0,
            ttft_ms=None,
            overhead_ms=1.0,
            status=200,
            error_class=None,
            retries=0,
            upstream_request_id=None,
        )
    )
    assert writer.flush()


def test_the_cost_tab_shows_what_the_cache_saved_and_cost(page, settings):
    settings.METIS_LOCAL_MODE = True
    eng, sales = make_team(name="eng"), make_team(name="sales")
    alice, _ = make_key(name="alice-laptop", user=make_user(username="alice"), team=eng)
    carol, _ = make_key(name="carol-laptop", user=make_user(username="carol"), team=sales)
    # Haiku 4.5: $1 input, $0.10 cache read, $1.25 5-minute and $2 1-hour writes (per M).
    record(alice, "claude-haiku-4-5", "anthropic", Usage(
        input_tokens=2_000_000, output_tokens=100, cache_read_tokens=1_500_000,
        cache_write_tokens=400_000, cache_write_1h_tokens=100_000,
    ))  # fmt: skip
    record(carol, "claude-haiku-4-5", "anthropic", Usage(input_tokens=1_000_000, output_tokens=1))

    page.goto("/dashboard/?tab=cost&window=1h")
    # 1.5 M of 3 M input tokens were read from the cache.
    expect(page.locator("#cache-hit-rate")).to_have_text("50.0 %")
    # 300 k 5-minute writes at $1.25/M, 100 k 1-hour writes at $2/M.
    expect(page.locator("#cache-write-5m")).to_have_text("$0.38")
    expect(page.locator("#cache-write-5m .money")).to_have_attribute("title", "$0.375")
    expect(page.locator("#cache-write-1h")).to_have_text("$0.20")
    # Saved: 1.5 M reads at $1 - $0.10; the premium: 300 k × $0.25 + 100 k × $1.
    expect(page.locator("#cache-saved")).to_have_text("$1.35")
    expect(page.locator("#cache-net .money")).to_have_attribute("title", "$1.175")

    by_key = page.locator("#cache-by-key tbody tr")
    expect(by_key).to_have_count(1)  # carol's key never touched the cache
    expect(by_key.first).to_contain_text("alice-laptop")
    expect(by_key.first).to_contain_text("75.0 %")
    expect(page.locator("#cache-by-team tbody tr").first).to_contain_text("eng")
    expect(page.locator("#cache-by-model tbody tr").first).to_contain_text("claude-haiku-4-5")
    expect(page).to_have_url(
        re.compile(r"/dashboard/\?tab=cost&window=1h$")
    )  # fetched, not navigated

    from axe_playwright_python.sync_playwright import Axe

    violations = Axe().run(page).response["violations"]
    assert [v["id"] for v in violations if v["impact"] in ("serious", "critical")] == []

    # The tab comes back through an htmx swap with its figures.
    page.get_by_role("link", name="Activity").click()
    expect(page.locator("#prompt-cache")).to_have_count(0)
    page.get_by_role("link", name="Cost").click()
    expect(page.locator("#cache-saved")).to_have_text("$1.35")
