"""Real headless Chromium (Debian's `chromium`) driven by Playwright against a live server.

Skipped with a reason on a machine without /usr/bin/chromium; in CI (env CI set) a
missing browser fails instead, so the browser tests can never silently stop running."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser(transactional_db: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Per test, and only inside it: Playwright's sync API keeps an event loop running in
    the test thread while it is open, which would break later tests that call
    asyncio.run(). The database is set up first, so it is torn down after the browser."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: apt-get install chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    # With that loop running, Django refuses ORM calls in this thread (seeding data in the
    # test) as if they came from async code; they are plain sync calls.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server) -> Iterator[object]:
    context = browser.new_context(base_url=live_server.url)
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


# Agent turns through `/sessions/*` against the mock provider (test_agent_traffic.py).
from tests.integration.conftest import agent_server, mock_provider  # noqa: E402, F401
