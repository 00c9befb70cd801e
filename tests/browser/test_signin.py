"""Signing in through /login/ in the real Chromium: each person lands on their own scope,
by password and through a real OpenID provider (django-oauth-toolkit, its own process)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from identity.models import Team, TeamMembership, User
from tests.calls import record_calls
from tests.factories import make_key, make_team, make_user
from tests.oidc_provider.process import Provider, running_provider

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("transactional_db")]
PASSWORD = "a-long-test-password"


@pytest.fixture(autouse=True)
def login_required(settings) -> None:
    settings.METIS_LOCAL_MODE = False


def seed() -> dict[str, User]:
    """eng: alice and bob, whose budget owner is olga (not staff); sales: carol."""
    eng, sales = make_team(name="eng"), make_team(name="sales")
    people = {name: make_user(username=name) for name in ("olga", "alice", "bob", "carol")}
    for name, team in (("alice", eng), ("bob", eng), ("carol", sales)):
        key, _ = make_key(name=f"{name}-laptop", user=people[name], team=team)
        record_calls(key, count=2, cost_usd="0.10")
    TeamMembership.objects.create(user=people["olga"], team=eng, role="budget_owner")
    for user in people.values():
        user.email = f"{user.username}@example.com"
        user.set_password(PASSWORD)
        user.save()
    return people


def sign_in(page, username: str) -> None:
    page.goto("/dashboard/?tab=identity&view=key")
    expect(page).to_have_url(re.compile(r"/login/\?next="))
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("header .who")).to_contain_text(username)


def test_a_budget_owner_signs_in_and_sees_only_their_teams(page):
    seed()
    sign_in(page, "olga")
    expect(page).to_have_url(re.compile(r"/dashboard/\?tab=identity&view=key$"))
    keys = page.locator("#keys")
    expect(keys).to_contain_text("alice-laptop")
    expect(keys).to_contain_text("bob-laptop")
    expect(keys).not_to_contain_text("carol-laptop")
    page.goto("/dashboard/?tab=identity&view=team")
    expect(page.locator("#teams")).to_contain_text("eng")
    expect(page.locator("#teams")).not_to_contain_text("sales")


def test_a_developer_sees_only_their_own_keys(page):
    seed()
    sign_in(page, "bob")
    expect(page.locator("#keys")).to_contain_text("bob-laptop")
    expect(page.locator("#keys")).not_to_contain_text("alice-laptop")
    expect(page.locator("#keys")).not_to_contain_text("carol-laptop")


def test_signing_out_ends_the_session(page):
    seed()
    sign_in(page, "bob")
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login/$"))
    page.goto("/dashboard/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/dashboard/$"))


def test_a_non_staff_user_is_still_refused_by_the_admin_login(page):
    seed()
    page.goto("/admin/login/")
    page.fill("#id_username", "olga")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator(".errornote")).to_contain_text("staff account")


# -- single sign-on -------------------------------------------------------------------

PROVIDER_USERS = [
    {"username": "olga", "password": "olga-at-the-provider", "email": "Olga@Example.com",
     "groups": ["sales", "no-such-team"]},
    {"username": "newbie", "password": "newbie-at-the-provider", "email": "newbie@example.com",
     "groups": ["eng"]},
]  # fmt: skip


@pytest.fixture(scope="module")
def provider(live_server, tmp_path_factory) -> Iterator[Provider]:
    callback = f"{live_server.url}/login/oidc/callback/"
    tmp = tmp_path_factory.mktemp("provider")
    with running_provider(tmp, redirect_uri=callback, users=PROVIDER_USERS) as provider:
        yield provider


@pytest.fixture
def sso(settings, provider) -> Provider:
    settings.METIS_OIDC_ISSUER = provider.issuer
    settings.METIS_OIDC_CLIENT_ID = provider.client_id
    settings.METIS_OIDC_CLIENT_SECRET = provider.client_secret
    settings.METIS_OIDC_NAME = "Example SSO"
    settings.METIS_OIDC_TEAM_CLAIM = "groups"
    return provider


def sign_in_with_provider(page, username: str, password: str) -> None:
    page.goto("/dashboard/?tab=identity&view=key")
    page.get_by_role("link", name="Sign in with Example SSO").click()
    expect(page.get_by_role("heading", name="Test OpenID provider")).to_be_visible()
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.get_by_role("button", name="Log in to the provider").click()
    page.get_by_role("button", name="Authorize").click()


def test_single_sign_on_lands_the_matching_user_on_their_scope(page, sso):
    people = seed()
    sign_in_with_provider(page, "olga", "olga-at-the-provider")
    # matched by email, case-insensitively: Olga@Example.com is olga@example.com
    expect(page.locator("header .who")).to_contain_text("olga")
    expect(page).to_have_url(re.compile(r"/dashboard/\?tab=identity&view=key$"))
    expect(page.locator("#keys")).to_contain_text("alice-laptop")
    expect(page.locator("#keys")).not_to_contain_text("carol-laptop")
    # the groups claim made her a member of sales (an existing team), not its budget owner
    membership = TeamMembership.objects.get(user=people["olga"], team__name="sales")
    assert membership.role == "member"
    assert not Team.objects.filter(name="no-such-team").exists()  # never created


def test_an_unknown_person_is_refused_unless_users_may_be_created(page, sso, settings):
    seed()
    settings.METIS_OIDC_CREATE_USERS = False
    sign_in_with_provider(page, "newbie", "newbie-at-the-provider")
    expect(page.locator("#signin-error")).to_contain_text(
        "No Metis account has the email address newbie@example.com"
    )
    assert not User.objects.filter(email__iexact="newbie@example.com").exists()


def test_a_new_person_is_created_on_first_sign_in_when_allowed(page, sso, settings):
    seed()
    settings.METIS_OIDC_CREATE_USERS = True
    sign_in_with_provider(page, "newbie", "newbie-at-the-provider")
    expect(page.locator("header .who")).to_contain_text("newbie@example.com")
    user = User.objects.get(email="newbie@example.com")
    assert not user.is_staff and not user.has_usable_password()
    assert list(user.memberships.values_list("team__name", "role")) == [("eng", "member")]
    expect(page).to_have_url(re.compile(r"/dashboard/\?tab=identity&view=key$"))
    expect(page.locator("main")).not_to_contain_text("alice-laptop")  # a member, no owner


def test_an_email_shared_by_two_accounts_is_refused(page, sso):
    people = seed()
    people["alice"].email = "OLGA@example.com"
    people["alice"].save()
    sign_in_with_provider(page, "olga", "olga-at-the-provider")
    expect(page.locator("#signin-error")).to_contain_text("More than one Metis account")
    expect(page.locator("header .who")).not_to_contain_text("olga")
