"""The one-time token page in a real browser: rotate a key through its confirmation page,
then Copy puts the token on the clipboard, or, without the clipboard API, selects it."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from identity.keys import hash_token
from identity.models import GatewayKey
from tests.factories import make_key

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("transactional_db")]


def rotate_in_the_admin(page, key: GatewayKey) -> str:
    page.goto("/admin/login/?next=/admin/identity/gatewaykey/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "password")
    page.click("input[type=submit]")
    page.check(f"input[name=_selected_action][value='{key.pk}']")
    page.select_option("select[name=action]", "rotate_keys")
    page.click("button[name=index]")
    expect(page.locator("h1")).to_have_text("Rotate 1 gateway key?")
    expect(page.locator(".metis-keys-affected")).to_contain_text(key.name)
    page.get_by_role("button", name="Yes, rotate it").click()
    token = page.locator("code.metis-token").inner_text()
    assert GatewayKey.objects.active().get(token_hash=hash_token(token)) == key
    return token


def test_copy_puts_the_new_token_on_the_clipboard(browser, live_server, admin_user) -> None:
    key, _ = make_key(name="ci-runner")
    context = browser.new_context(base_url=live_server.url)
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()

    token = rotate_in_the_admin(page, key)
    page.get_by_role("button", name="Copy the token of ci-runner").click()

    expect(page.locator(".metis-copied")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == token
    context.close()


def test_without_the_clipboard_api_copy_selects_the_token(browser, live_server, admin_user) -> None:
    key, _ = make_key(name="ci-runner")
    context = browser.new_context(base_url=live_server.url)
    # As on a plain-HTTP deployment, where browsers withhold navigator.clipboard.
    context.add_init_script("Object.defineProperty(navigator, 'clipboard', {value: undefined})")
    page = context.new_page()

    token = rotate_in_the_admin(page, key)
    page.get_by_role("button", name="Copy the token of ci-runner").click()

    assert page.evaluate("window.getSelection().toString()") == token
    expect(page.locator(".metis-copied")).to_have_text(
        # execCommand("copy") may or may not be allowed headless; either way the user knows.
        re.compile(r"^(Copied|Selected: press Ctrl\+C \(⌘C\) to copy)$")
    )
    context.close()
