"""The operator console around keys: revoke and rotate ask first, keys are never deleted,
the one-time token page copies, labels carry units, and admin and dashboard link both ways."""

from __future__ import annotations

import re

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Permission

from identity.keys import hash_token
from identity.models import GatewayKey, Quota, Team, User
from tests.factories import make_key, make_team, make_user
from tests.integration.test_admin import HIDDEN, KEYS, TOKEN, confirm

pytestmark = pytest.mark.django_db


def choose(admin_client, action: str, *keys: GatewayKey, query: str = ""):
    data = {"action": action, "_selected_action": [k.pk for k in keys], "index": "0"}
    return admin_client.post(f"{KEYS}{query}", data)


def test_revoking_from_the_list_asks_first_and_lists_the_keys(admin_client) -> None:
    (live, token), (gone, _) = make_key(name="alice-laptop"), make_key(name="old", revoked=True)

    page = choose(admin_client, "revoke_keys", live, gone, query="?o=2")

    html = page.content.decode()
    assert page.status_code == 200 and "Revoke 1 gateway key?" in html
    assert "alice-laptop" in html and live.pk in html
    assert re.search(rf"{gone.pk} old: revoked", html)  # listed as left alone
    # Nothing happened yet, and nothing was logged.
    assert GatewayKey.objects.active().filter(token_hash=hash_token(token)).exists()
    assert not LogEntry.objects.exists()
    # Cancel goes back to the list as it was filtered; only the confirmable key is posted.
    assert 'href="/admin/identity/gatewaykey/?o=2" class="button cancel-link"' in html
    assert dict(HIDDEN.findall(html))["_selected_action"] == live.pk
    assert "index" not in dict(HIDDEN.findall(html))


def test_confirming_a_rotation_shows_the_token_once_and_logs_it(admin_client, admin_user) -> None:
    key, old = make_key()

    page = confirm(admin_client, choose(admin_client, "rotate_keys", key), KEYS)

    new = TOKEN.findall(page.content.decode())
    assert len(new) == 1 and new[0] != old
    assert GatewayKey.objects.active().get(token_hash=hash_token(new[0])) == key
    entry = LogEntry.objects.get(object_id=key.pk)
    assert (entry.action_flag, entry.change_message, entry.user) == (
        CHANGE,
        "Rotated token",
        admin_user,
    )


def test_a_key_page_has_revoke_and_rotate_buttons_that_ask_first(admin_client) -> None:
    key, token = make_key(name="ci-runner")
    change = f"{KEYS}{key.pk}/change/"
    html = admin_client.get(change).content.decode()
    assert f'href="{KEYS}{key.pk}/revoke/"' in html and f'href="{KEYS}{key.pk}/rotate/"' in html

    ask = admin_client.get(f"{KEYS}{key.pk}/revoke/")

    assert "Are you sure you want to revoke this key?" in ask.content.decode()
    assert f'href="{change}" class="button cancel-link"' in ask.content.decode()
    assert GatewayKey.objects.get().revoked_at is None
    done = confirm(admin_client, ask, f"{KEYS}{key.pk}/revoke/")
    assert done.redirect_chain[-1][0] == change
    assert "Revoked 1 key(s)." in done.content.decode()
    assert GatewayKey.objects.get().status == GatewayKey.Status.REVOKED
    assert LogEntry.objects.get(object_id=key.pk).change_message == "Revoked"
    # A revoked key offers neither button any more, and cannot be rotated by URL.
    html = admin_client.get(change).content.decode()
    assert "/revoke/" not in html and "/rotate/" not in html
    refused = admin_client.post(f"{KEYS}{key.pk}/rotate/", {"post": "yes"}, follow=True)
    assert "Only active keys can be rotated." in refused.content.decode()
    again = admin_client.get(f"{KEYS}{key.pk}/revoke/", follow=True)
    assert "already revoked" in again.content.decode()
    by_action = choose(admin_client, "revoke_keys", key)
    assert by_action.status_code == 302  # back to the list, with the same message
    assert GatewayKey.objects.get().token_hash == hash_token(token)


def test_rotating_from_the_key_page_shows_the_new_token(admin_client) -> None:
    key, _ = make_key()

    ask = admin_client.get(f"{KEYS}{key.pk}/rotate/")
    page = confirm(admin_client, ask, f"{KEYS}{key.pk}/rotate/")

    html = page.content.decode()
    assert len(TOKEN.findall(html)) == 1 and "no-store" in page.headers["Cache-Control"]


def test_key_confirmations_need_a_staff_login(client) -> None:
    key, _ = make_key()
    response = client.post(f"{KEYS}{key.pk}/revoke/", {"post": "yes"})
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert GatewayKey.objects.get(pk=key.pk).revoked_at is None


def test_a_staff_user_who_may_only_view_keys_can_neither_revoke_nor_rotate(client) -> None:
    viewer = make_user(username="auditor")
    viewer.is_staff = True
    viewer.save()
    viewer.user_permissions.add(Permission.objects.get(codename="view_gatewaykey"))
    client.force_login(viewer)
    key, token = make_key()

    changelist = client.get(KEYS).content.decode()
    by_action = choose(client, "revoke_keys", key)
    by_button = client.post(f"{KEYS}{key.pk}/revoke/", {"post": "yes"})

    assert "revoke_keys" not in changelist and "rotate_keys" not in changelist
    assert "gateway key?" not in by_action.content.decode()  # no confirmation offered
    assert by_button.status_code == 403
    assert client.get(f"{KEYS}gk_none/rotate/").status_code == 404
    assert GatewayKey.objects.active().get(token_hash=hash_token(token)) == key


def test_keys_cannot_be_deleted_in_bulk_or_one_by_one(admin_client) -> None:
    key, _ = make_key()

    changelist = admin_client.get(KEYS)
    bulk = choose(admin_client, "delete_selected", key)
    single = admin_client.post(f"{KEYS}{key.pk}/delete/", {"post": "yes"})

    assert "delete_selected" not in changelist.content.decode()
    assert 'class="deletelink"' not in admin_client.get(f"{KEYS}{key.pk}/change/").content.decode()
    assert bulk.status_code == 302 and single.status_code == 403
    assert GatewayKey.objects.filter(pk=key.pk).exists()


@pytest.mark.parametrize("kind", ["team", "user"])
def test_a_team_or_user_with_keys_is_kept_and_the_page_says_why(admin_client, kind) -> None:
    owner = make_team(name="eng") if kind == "team" else make_user(username="alice")
    make_key(name="eng-ci", revoked=True, **{kind: owner})
    url = f"/admin/identity/{kind}/{owner.pk}/delete/"

    page = admin_client.get(url).content.decode()
    admin_client.post(url, {"post": "yes"})
    bulk = admin_client.post(
        f"/admin/identity/{kind}/",
        {"action": "delete_selected", "_selected_action": [owner.pk], "post": "yes"},
    )

    assert "protected related objects" in page and "Gateway key: eng-ci" in page
    assert "Keys are revoked, never deleted." in page
    assert "Gateway key: eng-ci" in bulk.content.decode()
    model = Team if kind == "team" else User
    assert model.objects.filter(pk=owner.pk).exists()
    assert getattr(GatewayKey.objects.get(), f"{kind}_id") == owner.pk


def test_a_team_without_keys_can_still_be_deleted(admin_client) -> None:
    team = make_team()
    admin_client.post(f"/admin/identity/team/{team.pk}/delete/", {"post": "yes"})
    assert not Team.objects.exists()


def test_the_token_page_has_a_copy_button_and_is_not_an_error(admin_client) -> None:
    key, _ = make_key()

    html = confirm(admin_client, choose(admin_client, "rotate_keys", key), KEYS).content.decode()

    assert 'class="button metis-copy" data-copy="token-1"' in html
    assert "navigator.clipboard" in html and "selectNodeContents" in html
    assert "errornote" not in html and 'role="alert"' not in html


def test_money_and_rate_fields_carry_their_units(admin_client) -> None:
    key, _ = make_key()
    Quota.objects.create(key=key, hard_cap_usd=5)

    quota_form = admin_client.get("/admin/identity/quota/add/").content.decode()
    key_page = admin_client.get(f"{KEYS}{key.pk}/change/").content.decode()
    provider = admin_client.get("/admin/identity/providercredential/add/").content.decode()
    quotas = admin_client.get("/admin/identity/quota/").content.decode()

    for label in ("Soft cap (USD)", "Hard cap (USD)", "Rate limit (requests/minute)",
                  "Rate limit (tokens/minute)"):  # fmt: skip
        assert label in quota_form and label in key_page and label in quotas
    assert '<label for="id_api_key">API key:</label>' in provider
    assert "Base URL" in provider


def test_view_site_opens_the_dashboard_and_pages_link_to_their_view(admin_client) -> None:
    team = make_team(name="eng & ops")
    user = make_user(username="alice")
    key, _ = make_key(team=team, user=user)

    index = admin_client.get("/admin/").content.decode()
    pages = {
        "team": admin_client.get(f"/admin/identity/team/{team.pk}/change/"),
        "user": admin_client.get(f"/admin/identity/user/{user.pk}/change/"),
        "key": admin_client.get(f"{KEYS}{key.pk}/change/"),
    }

    assert '<a href="/dashboard/">View site</a>' in index
    links = {
        kind: re.findall(
            r'href="([^"]+)" class="viewsitelink metis-dashboard-link"', p.content.decode()
        )
        for kind, p in pages.items()
    }
    assert links == {
        "team": ["/dashboard/?team=eng+%26+ops"],
        "user": ["/dashboard/?user=alice"],
        "key": [f"/dashboard/?gateway_key={key.pk}"],
    }


def test_the_dashboard_links_to_the_admin_for_staff_only(admin_client, client, settings) -> None:
    settings.METIS_LOCAL_MODE = True
    assert 'href="/admin/"' in admin_client.get("/dashboard/").content.decode()
    assert 'href="/admin/"' not in client.get("/dashboard/").content.decode()
    client.force_login(make_user(username="dev"))
    assert 'href="/admin/"' not in client.get("/dashboard/").content.decode()
