"""Where the operator says what a cross-shape call does with a field the provider's shape has
no equivalent for: drop it, or refuse the call with a 400. Per workspace, and per key."""

from __future__ import annotations

import asyncio

import pytest

from gateway import auth
from identity.models import GatewayKey
from metis_site.cli import main
from tests.factories import make_key, make_workspace

WORKSPACES = "/admin/identity/workspace/"
KEYS = "/admin/identity/gatewaykey/"
NO_QUOTAS = {
    "quotas-TOTAL_FORMS": "0",
    "quotas-INITIAL_FORMS": "0",
    "quotas-MIN_NUM_FORMS": "0",
    "quotas-MAX_NUM_FORMS": "1000",
}


def drops(token: str) -> bool:
    snapshot = asyncio.run(auth.lookup(token))
    assert snapshot is not None
    return snapshot.drop_unsupported_params


@pytest.fixture
def fresh_cache(settings):
    # Long enough that only invalidation, never expiry, can explain a change being seen.
    settings.METIS_KEY_CACHE_SECONDS = 600
    auth.forget_cached_keys()
    yield
    auth.forget_cached_keys()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("workspace_drops", "key_says", "effective"),
    [
        (False, None, False),
        (True, None, True),
        (False, True, True),
        (True, False, False),
    ],
)
def test_a_key_follows_its_workspace_unless_it_says_otherwise(
    fresh_cache, workspace_drops, key_says, effective
) -> None:
    workspace = make_workspace()
    workspace.drop_unsupported_params = workspace_drops
    workspace.save()
    key, token = make_key(workspace=workspace)
    key.drop_unsupported_params = key_says
    key.save()

    assert drops(token) is effective


@pytest.mark.django_db(transaction=True)
def test_a_new_workspace_and_key_refuse_by_default(fresh_cache) -> None:
    key, token = make_key()

    assert (key.workspace.drop_unsupported_params, key.drop_unsupported_params) == (False, None)
    assert drops(token) is False


@pytest.mark.django_db(transaction=True)
def test_changing_the_workspace_in_the_admin_reaches_the_cached_key_at_once(
    fresh_cache, admin_client
) -> None:
    key, token = make_key()
    assert drops(token) is False  # now cached for ten minutes
    workspace = key.workspace

    page = admin_client.get(f"{WORKSPACES}{workspace.pk}/change/").content.decode()
    assert "instead of refused with a 400" in page and "x-metis-dropped-params" in page
    fields = {"name": workspace.name, "path": workspace.path, "default_model": ""}
    response = admin_client.post(
        f"{WORKSPACES}{workspace.pk}/change/", {**fields, "drop_unsupported_params": "on"}
    )

    assert response.status_code == 302
    assert drops(token) is True


@pytest.mark.django_db(transaction=True)
def test_changing_the_key_in_the_admin_overrides_its_workspace_at_once(
    fresh_cache, admin_client
) -> None:
    workspace = make_workspace()
    workspace.drop_unsupported_params = True
    workspace.save()
    key, token = make_key(workspace=workspace, name="alice-laptop")
    assert drops(token) is True

    page = admin_client.get(f"{KEYS}{key.pk}/change/").content.decode()
    assert "As the workspace says" in page and "Refuse the call (400)" in page
    fields = {"name": key.name, "workspace": workspace.pk, "allowed_models": "", **NO_QUOTAS}
    response = admin_client.post(
        f"{KEYS}{key.pk}/change/", {**fields, "drop_unsupported_params": "false"}
    )

    assert response.status_code == 302
    key.refresh_from_db()
    assert key.drop_unsupported_params is False
    assert drops(token) is False

    admin_client.post(f"{KEYS}{key.pk}/change/", {**fields, "drop_unsupported_params": "unknown"})
    key.refresh_from_db()
    assert key.drop_unsupported_params is None
    assert drops(token) is True


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("flag", "stored"),
    [([], None), (["--drop-unsupported-params"], True), (["--refuse-unsupported-params"], False)],
)
def test_issue_key_takes_the_policy_as_a_flag(capsys, tmp_path, monkeypatch, flag, stored):
    monkeypatch.setenv("METIS_ROLE", "serve")  # main() sets it for the process it starts
    argv = ["gateway", "issue-key", "--name", "k", "--workspace", str(tmp_path), *flag]

    assert main(argv) == 0
    key_id = capsys.readouterr().out.splitlines()[0].removeprefix("key_id: ")
    assert GatewayKey.objects.get(pk=key_id).drop_unsupported_params is stored
