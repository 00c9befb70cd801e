"""Who sees what on the analytics API: a test per role proves no data crosses teams.

Two teams: alpha (budget owner olga; developers dana and dave, one key each) and beta
(developer bob, one key). Every call costs a different amount, so a number that includes
someone else's call cannot pass for one that does not.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from identity.models import Quota, TeamMembership
from tests.factories import make_key, make_team, make_user
from tests.integration.analytics_seed import call_event, write

ENDPOINTS = ("cost", "by_key", "by_user", "by_team", "activity")


@dataclass
class World:
    keys: dict[str, str]  # username -> key id
    tokens: dict[str, str]  # username -> gw_ token
    users: dict[str, object]


@pytest.fixture
def world(transactional_db) -> World:
    alpha, beta = make_team(name="alpha"), make_team(name="beta")
    users = {name: make_user(username=name) for name in ("olga", "dana", "dave", "bob")}
    users["root"] = make_user(username="root", is_superuser=True)
    TeamMembership.objects.create(user=users["olga"], team=alpha, role="budget_owner")
    for name, team in (("dana", alpha), ("dave", alpha), ("bob", beta)):
        TeamMembership.objects.create(user=users[name], team=team)
    keys, tokens = {}, {}
    for name, team in (("dana", alpha), ("dave", alpha), ("bob", beta)):
        key, tokens[name] = make_key(name=f"{name}-laptop", user=users[name], team=team)
        keys[name] = key.id
    now = datetime.now(UTC) - timedelta(minutes=5)
    write([
        call_event(now, key=keys["dana"], user="dana", team="alpha", cost="0.001"),
        call_event(now, key=keys["dana"], user="dana", team="alpha", cost="0.002"),
        call_event(now, key=keys["dave"], user="dave", team="alpha", cost="0.004"),
        call_event(now, key=keys["bob"], user="bob", team="beta", cost="0.008"),
        # bob's key, labelled with a service name: still bob's key, still team beta
        call_event(now, key=keys["bob"], user="nightly-agent", team="beta", cost="0.016"),
    ])  # fmt: skip
    return World(keys=keys, tokens=tokens, users=users)


def fetch(client, path: str, **headers) -> tuple[int, dict]:
    response = client.get(f"/analytics/{path}", {"window": "24h"}, headers=headers)
    assert response["Metis-API-Version"] == "1.0"
    return response.status_code, response.json()


def seen(client, **headers) -> dict:
    """What every endpoint shows this client, reduced to comparable sets and sums."""
    answers = {}
    for path in ENDPOINTS:
        status, body = fetch(client, path, **headers)
        assert status == 200, (path, body)
        answers[path] = body
    teams = answers["by_team"]["teams"]
    return {
        "cost": Decimal(str(answers["cost"]["totals"]["cost_usd"])),
        "calls": answers["cost"]["totals"]["calls"],
        "keys": {k["name"] for k in answers["by_key"]["keys"]},
        "users": {u["user"] for u in answers["by_user"]["users"]},
        "teams": {t["team"] for t in teams},
        "team_users": {u["user"] for t in teams for u in t["by_user"]},
        "activity": {(c["user"], c["team"]) for c in answers["activity"]["calls"]},
        "labels": {label for k in answers["by_key"]["keys"] for label in k["labels"]},
    }


EVERYTHING = {
    "cost": Decimal("0.031"),
    "calls": 5,
    "keys": {"dana-laptop", "dave-laptop", "bob-laptop"},
    "users": {"dana", "dave", "bob"},  # accounts: nightly-agent is a label on bob's key
    "teams": {"alpha", "beta"},
    "team_users": {"dana", "dave", "bob"},
    "activity": {("dana", "alpha"), ("dave", "alpha"), ("bob", "beta")},
    "labels": {"nightly-agent"},
}  # fmt: skip


@pytest.fixture
def login_required(settings):
    settings.METIS_LOCAL_MODE = False


def test_local_mode_answers_without_login_and_shows_everything(client, settings, world):
    settings.METIS_LOCAL_MODE = True
    assert seen(client) == EVERYTHING


def test_with_login_required_an_anonymous_request_gets_401(client, login_required, world):
    for path in ENDPOINTS:
        status, body = fetch(client, path)
        assert status == 401 and "Bearer" in body["detail"]


def test_a_bad_or_revoked_bearer_token_gets_401_even_in_local_mode(client, settings, world):
    settings.METIS_LOCAL_MODE = True
    assert fetch(client, "cost", authorization="Bearer gw_not-a-real-token" + "x" * 40)[0] == 401
    from identity.models import GatewayKey

    GatewayKey.objects.get(pk=world.keys["bob"]).revoke()
    assert fetch(client, "cost", authorization=f"Bearer {world.tokens['bob']}")[0] == 401


def test_staff_see_everything(client, login_required, world):
    client.force_login(world.users["root"])
    assert seen(client) == EVERYTHING


def test_a_budget_owner_sees_their_team_and_its_members_and_nothing_of_another(
    client, login_required, world
):
    client.force_login(world.users["olga"])
    assert seen(client) == {
        "cost": Decimal("0.007"),
        "calls": 3,
        "keys": {"dana-laptop", "dave-laptop"},
        "users": {"dana", "dave"},
        "teams": {"alpha"},
        "team_users": {"dana", "dave"},
        "activity": {("dana", "alpha"), ("dave", "alpha")},
        "labels": set(),
    }
    # Asking for the other team by name shows nothing of it.
    response = client.get("/analytics/cost", {"window": "24h", "team": "beta"})
    assert response.json()["totals"]["calls"] == 0


def test_a_developer_sees_only_their_own_calls(client, login_required, world):
    client.force_login(world.users["dana"])
    assert seen(client) == {
        "cost": Decimal("0.003"),
        "calls": 2,
        "keys": {"dana-laptop"},
        "users": {"dana"},
        "teams": {"alpha"},
        "team_users": {"dana"},
        "activity": {("dana", "alpha")},
        "labels": set(),
    }
    response = client.get("/analytics/cost", {"window": "24h", "user": "dave"})
    assert response.json()["totals"]["calls"] == 0


def test_a_developer_sees_their_keys_calls_under_any_user_label(client, login_required, world):
    client.force_login(world.users["bob"])
    view = seen(client)
    assert view["users"] == {"bob"} and view["labels"] == {"nightly-agent"}
    assert view["teams"] == {"beta"} and view["cost"] == Decimal("0.024")


def test_a_label_naming_someone_never_moves_calls_into_their_view_or_budget(
    client, login_required, world
):
    """Anyone can send any x-metis-user: bob's key calling as "dana" stays bob's."""
    write([call_event(datetime.now(UTC) - timedelta(minutes=1), key=world.keys["bob"],
                      user="dana", team="beta", cost="0.5")])  # fmt: skip
    Quota.objects.create(user=world.users["dana"], period="day", hard_cap_usd=Decimal("1"))
    client.force_login(world.users["dana"])
    view = seen(client)
    assert view["cost"] == Decimal("0.003") and view["calls"] == 2
    (dana,) = fetch(client, "by_user")[1]["users"]
    assert dana["quota"]["quotas"][0]["spent_usd"] == 0.003  # this period: her own calls
    client.force_login(world.users["bob"])
    bob = seen(client)
    assert bob["cost"] == Decimal("0.524") and bob["labels"] == {"nightly-agent", "dana"}


def test_a_gateway_token_as_bearer_sees_only_its_own_key(client, login_required, world):
    headers = {"authorization": f"Bearer {world.tokens['dave']}"}
    assert seen(client, **headers) == {
        "cost": Decimal("0.004"),
        "calls": 1,
        "keys": {"dave-laptop"},
        "users": {"dave"},
        "teams": {"alpha"},
        "team_users": {"dave"},
        "activity": {("dave", "alpha")},
        "labels": set(),
    }


@pytest.mark.parametrize(
    ("host", "require_login", "status"),
    [("127.0.0.1", "", 200), ("127.0.0.1", "1", 401), ("0.0.0.0", "", 401)],
)
def test_metis_serve_is_open_only_on_loopback_without_require_login(
    tmp_path, host, require_login, status
):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "METIS_LOCAL_MODE")}
    env.update(METIS_HOME=str(tmp_path), METIS_REQUIRE_LOGIN=require_login)
    server = subprocess.Popen(
        [sys.executable, "-m", "metis_site.cli", "serve", "--host", host, "--port", str(port),
         "--no-gateway"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/analytics/cost?window=1h")
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and server.poll() is None, "serve did not start"
                time.sleep(0.2)
        assert response.status_code == status
    finally:
        server.terminate()
        server.wait(10)
