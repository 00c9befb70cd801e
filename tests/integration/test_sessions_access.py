"""Who sees and changes which session (agent/access.py): the analytics API's viewers,
through real sockets. eng: alice (developer) and olga (its budget owner); sales: carol."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest
from django.test import Client

from identity.models import TeamMembership
from tests.factories import make_key, make_team, make_user, make_workspace

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class World:
    url: str
    alice_key: str
    alice_token: str
    alice_second_token: str
    carol_token: str
    alice_session: str
    carol_session: str

    def as_token(self, token: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def signed_in(self, username: str) -> httpx.Client:
        from identity.models import User

        django_client = Client()
        django_client.force_login(User.objects.get(username=username))
        cookie = django_client.cookies["sessionid"].value
        return httpx.Client(base_url=self.url, cookies={"sessionid": cookie}, timeout=30)


@pytest.fixture
def world(agent_server) -> World:
    eng, sales = make_team(name="eng"), make_team(name="sales")
    alice, carol, olga = (make_user(username=n) for n in ("alice", "carol", "olga"))
    make_user(username="root", is_superuser=True)
    TeamMembership.objects.create(user=olga, team=eng, role=TeamMembership.Role.BUDGET_OWNER)
    workspace = make_workspace(path="/srv/shared")
    alice_key, alice_token = make_key(name="alice-agent", user=alice, team=eng,
                                      workspace=workspace)  # fmt: skip
    _, alice_second = make_key(name="alice-ci", user=alice, team=eng, workspace=workspace)
    _, carol_token = make_key(name="carol-agent", user=carol, team=sales, workspace=workspace)
    sessions = {}
    for name, token in (("alice", alice_token), ("carol", carol_token)):
        with httpx.Client(base_url=agent_server.url, timeout=30,
                          headers={"Authorization": f"Bearer {token}"}) as http:  # fmt: skip
            created = http.post("/sessions", json={"model": "haiku", "title": name})
            assert created.status_code == 201, created.text
            sessions[name] = created.json()["id"]
    return World(agent_server.url, alice_key.id, alice_token, alice_second, carol_token,
                 sessions["alice"], sessions["carol"])  # fmt: skip


def listed(http: httpx.Client) -> set[str]:
    response = http.get("/sessions")
    assert response.status_code == 200, response.text
    return {s["title"] for s in response.json()["sessions"]}


def everything(http: httpx.Client, session_id: str) -> dict[str, int]:
    """The status of each endpoint on `session_id` (a write that works is undone by none:
    the delete comes last)."""
    path = f"/sessions/{session_id}"
    return {
        "read": http.get(path).status_code,
        "pin": http.patch(path, json={"model": "sonnet"}).status_code,
        "message": http.post(f"{path}/messages", json={"content": "hi"}).status_code,
        "delete": http.delete(path).status_code,
    }


HIDDEN = {"read": 404, "pin": 404, "message": 404, "delete": 404}
READ_ONLY = {"read": 200, "pin": 403, "message": 403, "delete": 403}
ALLOWED = {"read": 200, "pin": 200, "message": 200, "delete": 204}


def test_without_credentials_every_endpoint_answers_401(world):
    with world.as_token(None) as http:
        answers = [
            http.get("/sessions"),
            http.post("/sessions", json={}),
            http.get(f"/sessions/{world.alice_session}"),
            http.patch(f"/sessions/{world.alice_session}", json={"model": None}),
            http.delete(f"/sessions/{world.alice_session}"),
            http.post(f"/sessions/{world.alice_session}/messages", json={"content": "hi"}),
        ]
    assert {r.status_code for r in answers} == {401}
    assert answers[0].json()["error"]["type"] == "authentication_error"
    assert answers[0].headers["Metis-API-Version"] == "1.0"


def test_a_bad_or_revoked_token_is_refused(world):
    from identity.models import GatewayKey

    with world.as_token("gw_not-a-real-token") as http:
        assert http.get("/sessions").status_code == 401
    GatewayKey.objects.get(pk=world.alice_key).revoke()
    with world.as_token(world.alice_token) as http:
        refused = http.get("/sessions")
    assert refused.status_code == 401 and "revoked" in refused.json()["error"]["message"]


def test_a_key_sees_and_changes_only_its_own_sessions(world):
    with world.as_token(world.alice_second_token) as http:
        assert listed(http) == set()  # the same owner's other key: not this key's session
        assert everything(http, world.alice_session) == HIDDEN
    with world.as_token(world.carol_token) as http:
        assert listed(http) == {"carol"}
        assert everything(http, world.alice_session) == HIDDEN  # another team: 404, not 403
    with world.as_token(world.alice_token) as http:
        assert listed(http) == {"alice"}
        assert everything(http, world.alice_session) == ALLOWED


def test_a_signed_in_developer_uses_their_own_keys_sessions_only(world):
    with world.signed_in("carol") as http:
        assert listed(http) == {"carol"}
        assert everything(http, world.alice_session) == HIDDEN
        no_key = http.post("/sessions", json={"title": "x"})
        not_hers = http.post("/sessions", json={"key_id": world.alice_key})
    assert no_key.status_code == 400 and "key_id" in no_key.json()["error"]["message"]
    assert not_hers.status_code == 404
    with world.signed_in("alice") as http:
        created = http.post("/sessions", json={"key_id": world.alice_key, "model": "haiku"})
        assert created.status_code == 201 and created.json()["key_id"] == world.alice_key
        assert listed(http) == {"alice", ""}
        assert everything(http, world.alice_session) == ALLOWED


def test_a_budget_owner_reads_their_team_s_sessions_but_does_not_write(world):
    with world.signed_in("olga") as http:
        assert listed(http) == {"alice"}
        assert everything(http, world.alice_session) == READ_ONLY
        assert everything(http, world.carol_session) == HIDDEN


def test_staff_see_and_change_everything(world):
    with world.signed_in("root") as http:
        assert listed(http) == {"alice", "carol"}
        assert everything(http, world.carol_session) == ALLOWED


def test_local_mode_opens_only_connections_metis_serve_judged_local(world, settings):
    settings.METIS_LOCAL_MODE = True
    with world.as_token(None) as http:
        # Judged by the connection: the test server is not `metis serve`, so no socket was
        # marked local, and local mode does not open it.
        assert http.get("/sessions").status_code == 401
