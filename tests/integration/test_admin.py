"""The operator console: keys issued once, revoked and rotated with an audit trail, found
with filters and search; provider keys write-only; quotas refused when they make no sense."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.sessions.models import Session
from django.utils import timezone

from identity.keys import hash_token
from identity.models import GatewayKey, ProviderCredential, Quota
from tests.factories import make_key, make_team, make_user, make_workspace

pytestmark = pytest.mark.django_db

KEYS = "/admin/identity/gatewaykey/"
PROVIDERS = "/admin/identity/providercredential/"
QUOTAS = "/admin/identity/quota/"
RAW_PROVIDER_KEY = "sk-proj-raw-provider-key-for-the-admin-test-abcdef0123"
TOKEN = re.compile(r"gw_[A-Za-z0-9_-]{40,}")
NO_QUOTAS = {
    "quotas-TOTAL_FORMS": "0",
    "quotas-INITIAL_FORMS": "0",
    "quotas-MIN_NUM_FORMS": "0",
    "quotas-MAX_NUM_FORMS": "1000",
}


def issue_in_admin(admin_client, **fields: object) -> tuple[str, str]:
    """Submit the add form; returns the response page and the token on it."""
    data = {"name": "alice-laptop", "workspace": make_workspace().pk, **NO_QUOTAS, **fields}
    page = admin_client.post(f"{KEYS}add/", data).content.decode()
    tokens = TOKEN.findall(page)
    assert len(tokens) == 1, page
    return page, tokens[0]


HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def run_action(admin_client, action: str, *keys: GatewayKey):
    """Choose the action in the key list, then say yes on its confirmation page."""
    data = {"action": action, "_selected_action": [k.pk for k in keys], "index": "0"}
    page = admin_client.post(KEYS, data, follow=True)
    if "Yes, " not in page.content.decode():
        return page  # refused before any confirmation
    return confirm(admin_client, page, KEYS)


def confirm(admin_client, page, url: str):
    """Submit the confirmation page's form as a browser would: its hidden fields only."""
    fields: dict[str, list[str]] = {}
    for name, value in HIDDEN.findall(page.content.decode()):
        fields.setdefault(name, []).append(value)
    return admin_client.post(url, fields, follow=True)


def test_issuing_a_key_shows_its_working_token_exactly_once(admin_client) -> None:
    team = make_team()

    page, token = issue_in_admin(admin_client, team=team.pk, allowed_models="haiku, sonnet")

    key = GatewayKey.objects.get()
    assert page.count(token) == 1
    assert "shown only this once" in page
    assert key.token_hash == hash_token(token)
    assert GatewayKey.objects.active().get(token_hash=hash_token(token)) == key
    assert key.allowed_models == ["haiku", "sonnet"] and key.team == team


def test_issued_token_is_not_kept_in_messages_session_cookies_or_pages(
    admin_client, database_text
) -> None:
    _, token = issue_in_admin(admin_client)
    key = GatewayKey.objects.get()

    changelist = admin_client.get(KEYS)
    change_page = admin_client.get(f"{KEYS}{key.pk}/change/")

    assert key.pk in changelist.content.decode()
    for response in (changelist, change_page):
        assert token not in response.content.decode()
        assert not [m for m in response.context["messages"] if token in str(m)]
    assert token not in str(dict(admin_client.session.items()))
    assert all(token not in str(s.get_decoded()) for s in Session.objects.all())
    assert token not in admin_client.cookies.output()
    assert token not in database_text()


def test_issuing_a_key_is_logged_as_an_addition_by_the_operator(admin_client, admin_user) -> None:
    issue_in_admin(admin_client)

    key = GatewayKey.objects.get()
    entry = LogEntry.objects.get(object_id=key.pk)
    assert (entry.action_flag, entry.user) == (ADDITION, admin_user)


def test_a_duplicate_live_name_is_refused_in_the_form(admin_client) -> None:
    make_key(name="taken")

    response = admin_client.post(
        f"{KEYS}add/", {"name": "taken", "workspace": make_workspace().pk, **NO_QUOTAS}
    )

    assert "A live gateway key with this name already exists." in response.content.decode()
    assert GatewayKey.objects.count() == 1


def test_renaming_a_key_to_a_live_name_is_refused_but_keeping_its_own_name_is_not(
    admin_client,
) -> None:
    make_key(name="taken")
    key, _ = make_key(name="mine")
    fields = {"workspace": key.workspace.pk, "allowed_models": "", **NO_QUOTAS}

    clash = admin_client.post(f"{KEYS}{key.pk}/change/", {**fields, "name": "taken"})
    same = admin_client.post(f"{KEYS}{key.pk}/change/", {**fields, "name": "mine"})

    assert "A live gateway key with this name already exists." in clash.content.decode()
    assert same.status_code == 302
    assert GatewayKey.objects.get(pk=key.pk).name == "mine"


def test_revoke_action_stops_the_keys_and_writes_the_audit_trail(admin_client, admin_user) -> None:
    (first, first_token), (second, _) = make_key(), make_key()

    response = run_action(admin_client, "revoke_keys", first, second)

    assert "Revoked 2 key(s)." in response.content.decode()
    assert not GatewayKey.objects.active().filter(token_hash=hash_token(first_token)).exists()
    for key in (first, second):
        key.refresh_from_db()
        assert key.status == GatewayKey.Status.REVOKED
        entry = LogEntry.objects.get(object_id=key.pk, action_flag=CHANGE)
        assert (entry.change_message, entry.user) == ("Revoked", admin_user)


def test_rotate_action_shows_the_new_token_once_and_kills_the_old_one(
    admin_client, admin_user
) -> None:
    key, old_token = make_key()

    page = run_action(admin_client, "rotate_keys", key).content.decode()

    new_token = TOKEN.findall(page)[0]
    assert page.count(new_token) == 1 and old_token not in page
    assert "stopped working at once" in page
    active = GatewayKey.objects.active()
    assert active.get(token_hash=hash_token(new_token)).pk == key.pk
    assert not active.filter(token_hash=hash_token(old_token)).exists()
    entry = LogEntry.objects.get(object_id=key.pk)
    assert (entry.change_message, entry.user) == ("Rotated token", admin_user)
    assert new_token not in admin_client.get(KEYS).content.decode()


def test_rotate_action_refuses_revoked_keys(admin_client) -> None:
    key, _ = make_key(revoked=True)
    hash_before = key.token_hash

    response = run_action(admin_client, "rotate_keys", key)

    assert "Only active keys can be rotated." in response.content.decode()
    assert GatewayKey.objects.get().token_hash == hash_before


def changelist_ids(admin_client, query: str) -> set[str]:
    response = admin_client.get(f"{KEYS}?{query}")
    assert response.status_code == 200
    return {key.pk for key in response.context["cl"].result_list}


def test_changelist_filters_by_status(admin_client) -> None:
    live, _ = make_key()
    revoked, _ = make_key(revoked=True)
    expired, _ = make_key(expires_at=timezone.now() - timedelta(hours=1))

    assert changelist_ids(admin_client, "status=active") == {live.pk}
    assert changelist_ids(admin_client, "status=revoked") == {revoked.pk}
    assert changelist_ids(admin_client, "status=expired") == {expired.pk}
    assert changelist_ids(admin_client, "") == {live.pk, revoked.pk, expired.pk}


def test_changelist_filters_by_team_and_workspace(admin_client) -> None:
    eng, sales = make_team(name="eng"), make_team(name="sales")
    project = make_workspace(path="/srv/buyer-project")
    eng_key, _ = make_key(team=eng, workspace=project)
    sales_key, _ = make_key(team=sales)

    assert changelist_ids(admin_client, f"team__id__exact={eng.pk}") == {eng_key.pk}
    assert changelist_ids(admin_client, f"team__id__exact={sales.pk}") == {sales_key.pk}
    assert changelist_ids(admin_client, f"workspace__id__exact={project.pk}") == {eng_key.pk}


def test_changelist_search_finds_keys_by_name_owner_team_and_id(admin_client) -> None:
    alice_key, _ = make_key(name="alice-laptop", user=make_user(username="alice"))
    team_key, _ = make_key(name="ci-runner", team=make_team(name="platform"))

    assert changelist_ids(admin_client, "q=laptop") == {alice_key.pk}
    assert changelist_ids(admin_client, "q=alice") == {alice_key.pk}
    assert changelist_ids(admin_client, "q=platform") == {team_key.pk}
    assert changelist_ids(admin_client, f"q={team_key.pk}") == {team_key.pk}


def test_changelist_shows_status_owner_team_and_workspace(admin_client) -> None:
    make_key(name="bob-desktop", user=make_user(username="bob"), revoked=True)

    page = admin_client.get(KEYS).content.decode()

    assert "bob-desktop" in page and "bob" in page and "Revoked" in page


def test_provider_key_is_write_only_and_blank_keeps_the_old_one(
    admin_client, database_text
) -> None:
    fields = {"name": "openai", "provider": "openai", "base_url": "", "is_active": "on"}
    admin_client.post(f"{PROVIDERS}add/", {**fields, "api_key": RAW_PROVIDER_KEY})
    credential = ProviderCredential.objects.get()

    change_page = admin_client.get(f"{PROVIDERS}{credential.pk}/change/").content.decode()
    admin_client.post(f"{PROVIDERS}{credential.pk}/change/", {**fields, "api_key": ""})

    assert RAW_PROVIDER_KEY not in change_page
    assert RAW_PROVIDER_KEY not in admin_client.get(PROVIDERS).content.decode()
    assert credential.key_hint in change_page
    assert ProviderCredential.objects.get().api_key == RAW_PROVIDER_KEY
    assert RAW_PROVIDER_KEY not in database_text()


def test_provider_key_can_be_replaced(admin_client) -> None:
    fields = {"name": "anthropic", "provider": "anthropic", "base_url": "", "is_active": "on"}
    admin_client.post(f"{PROVIDERS}add/", {**fields, "api_key": RAW_PROVIDER_KEY})
    credential = ProviderCredential.objects.get()

    admin_client.post(f"{PROVIDERS}{credential.pk}/change/", {**fields, "api_key": "sk-new-1234"})

    assert ProviderCredential.objects.get().api_key == "sk-new-1234"


def test_a_rejected_provider_form_does_not_echo_the_key(admin_client) -> None:
    response = admin_client.post(
        f"{PROVIDERS}add/",
        {"name": "ollama", "provider": "openai-compatible", "api_key": RAW_PROVIDER_KEY},
    )

    page = response.content.decode()
    assert "An OpenAI-compatible provider needs a base URL." in page
    assert RAW_PROVIDER_KEY not in page
    assert not ProviderCredential.objects.exists()


QUOTA_FIELDS = ["team", "user", "key", "soft_cap_usd", "hard_cap_usd", "requests_per_minute"]
QUOTA_BLANK = {**dict.fromkeys([*QUOTA_FIELDS, "tokens_per_minute"], ""), "period": "month"}


def test_quota_admin_saves_a_valid_team_quota(admin_client) -> None:
    team = make_team()

    admin_client.post(f"{QUOTAS}add/", {**QUOTA_BLANK, "team": team.pk, "hard_cap_usd": "100"})

    assert Quota.objects.get().team == team


ONE_SCOPE = "A quota belongs to exactly one team, user or key."
RATES = "Rate limits must be at least 1 per minute."
SOFT_ABOVE_HARD = "The soft cap must not be above the hard cap."


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"hard_cap_usd": "10"}, ONE_SCOPE),
        ({"team": "TEAM", "user": "USER", "hard_cap_usd": "10"}, ONE_SCOPE),
        ({"team": "TEAM"}, "Set at least one limit: a cap or a rate."),
        ({"team": "TEAM", "soft_cap_usd": "50", "hard_cap_usd": "10"}, SOFT_ABOVE_HARD),
        ({"team": "TEAM", "hard_cap_usd": "-1"}, "The hard cap cannot be negative"),
        ({"team": "TEAM", "soft_cap_usd": "0"}, "The soft cap must be more than $0."),
        ({"user": "USER", "requests_per_minute": "0"}, RATES),
        ({"team": "TEAM", "tokens_per_minute": "0"}, RATES),
    ],
)
def test_quota_admin_refuses_invalid_combinations(admin_client, fields, message) -> None:
    team, user = make_team(), make_user()
    ids = {"TEAM": team.pk, "USER": user.pk}
    data = {**QUOTA_BLANK, **{k: ids.get(v, v) for k, v in fields.items()}}

    response = admin_client.post(f"{QUOTAS}add/", data)

    assert response.status_code == 200
    errors = " ".join(response.context["adminform"].form.non_field_errors())
    assert message in errors
    assert message in response.content.decode()
    assert not Quota.objects.exists()


def test_quota_admin_refuses_a_second_quota_for_the_same_team_and_period(admin_client) -> None:
    team = make_team()
    Quota.objects.create(team=team, period="month", hard_cap_usd=100)

    response = admin_client.post(
        f"{QUOTAS}add/", {**QUOTA_BLANK, "team": team.pk, "hard_cap_usd": "5"}
    )

    assert "This team already has a quota for this period." in response.content.decode()
    assert Quota.objects.count() == 1
    admin_client.post(
        f"{QUOTAS}add/", {**QUOTA_BLANK, "team": team.pk, "period": "day", "hard_cap_usd": "5"}
    )
    assert Quota.objects.count() == 2
