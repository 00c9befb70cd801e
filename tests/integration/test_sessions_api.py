"""`/sessions/*` on `metis serve`: sessions whose turns run through the gateway's pipeline
in-process, against the mock provider over loopback (agent/)."""

from __future__ import annotations

import httpx
import pytest

from tests.factories import make_key, make_team, make_user, make_workspace
from tests.integration.agent_server import agent_server  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def alice_token(transactional_db) -> str:
    alice = make_user(username="alice")
    _, token = make_key(name="agent-loop", user=alice, team=make_team(name="eng"),
                        workspace=make_workspace(path="/srv/agent"))  # fmt: skip
    return token


def client(server, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=30)


def test_a_two_turn_conversation_keeps_its_history_on_the_server(agent_server, alice_token):
    with client(agent_server, alice_token) as http:
        created = http.post("/sessions", json={"model": "haiku", "title": "demo"})
        assert created.status_code == 201, created.text
        session = created.json()
        first = http.post(f"/sessions/{session['id']}/messages", json={"content": "hello"})
        assert first.status_code == 200, first.text
        second = http.post(f"/sessions/{session['id']}/messages", json={"content": "again"})
        assert second.status_code == 200, second.text
        read = http.get(f"/sessions/{session['id']}").json()
    print(first.json(), read)
    assert read["turn_count"] == 2
    sent = agent_server.upstream_requests()
    print(sent[-1])
