"""Agent turns on the gateway's own pipeline: the routing chain decides the model, a
client that leaves cancels the turn, and the dashboard counts the calls as in-process."""

from __future__ import annotations

import re
import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from agent import store
from agent.models import AgentSession
from analytics.usage import Usage
from identity.models import Workspace
from tests.factories import make_key, make_team, make_user

pytestmark = pytest.mark.django_db(transaction=True)

WEATHER = {"name": "get_weather", "input_schema": {"type": "object"}}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A workspace whose .metis/routing.yaml sends tool use to sonnet, the rest to haiku."""
    rules = tmp_path / ".metis" / "routing.yaml"
    rules.parent.mkdir()
    rules.write_text(
        "rules:\n"
        "  - when: {tools: true}\n"
        "    model: sonnet\n"
        "default: haiku\n"
    )  # fmt: skip
    return tmp_path


@pytest.fixture
def token(transactional_db, project: Path) -> str:
    workspace = Workspace.objects.create(name="agent", path=str(project))
    return make_key(name="agent-loop", user=make_user(username="alice"),
                    team=make_team(name="eng"), workspace=workspace)[1]  # fmt: skip


def client(server, token: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"},
                        timeout=30)  # fmt: skip


def say(http: httpx.Client, session_id: str, **body) -> dict:
    answered = http.post(f"/sessions/{session_id}/messages", json=body)
    assert answered.status_code == 200, answered.text
    return answered.json()["turn"]


def test_routing_yaml_chooses_the_model_of_a_session_that_pins_none(agent_server, token):
    with client(agent_server, token) as http:
        with_tools = http.post("/sessions", json={"tools": [WEATHER]}).json()
        plain = http.post("/sessions", json={}).json()
        tool_turn = say(http, with_tools["id"], content="weather in Paris?")
        plain_turn = say(http, plain["id"], content="hello")
        pinned = say(http, plain["id"], content="and now", model="opus")
        read = http.get(f"/sessions/{with_tools['id']}").json()
    assert with_tools["model"] is None and plain["model"] is None
    assert (tool_turn["model"], tool_turn["decided_by"]) == ("claude-sonnet-4-6", "routing_rules")
    assert (plain_turn["model"], plain_turn["decided_by"]) == ("claude-haiku-4-5", "routing_rules")
    assert (pinned["model"], pinned["decided_by"]) == ("claude-opus-4-6", "request")
    assert read["turns"][0]["decided_by"] == "routing_rules"
    decided = agent_server.events("route.decided")
    assert [(e["model"], e["decided_by"], e["requested_model"]) for e in decided] == [
        ("claude-sonnet-4-6", "routing_rules", None),
        ("claude-haiku-4-5", "routing_rules", None),
        ("claude-opus-4-6", "request", "opus"),
    ]
    assert {e["inbound_shape"] for e in decided} == {"in-process"}
    sent = [r["body"]["model"] for r in agent_server.upstream_requests()]
    assert sent == ["claude-sonnet-4-6", "claude-haiku-4-5", "claude-opus-4-6"]


def test_a_rule_on_the_in_process_shape_applies_to_sessions_alone(agent_server, token, project):
    (project / ".metis" / "routing.yaml").write_text(
        "rules:\n  - when: {shape: in-process}\n    model: gpt-5-mini\ndefault: haiku\n"
    )
    with client(agent_server, token) as http:
        session = http.post("/sessions", json={}).json()
        turn = say(http, session["id"], content="hello")
    assert (turn["model"], turn["provider"], turn["decided_by"]) == (
        "gpt-5-mini", "openai", "routing_rules",
    )  # fmt: skip


def test_a_session_read_while_its_turn_is_stored_shows_the_turn_with_its_totals():
    """The session row and its turns are read in two statements; a turn committed between
    them must not show beside a count and totals that leave it out."""
    session = AgentSession.objects.create(id=store.new_session_id(), gateway_key_id="gk_x")
    read_first = AgentSession.objects.get(pk=session.id)  # the API has read the session row
    outcome = store.Outcome(
        turn_id=store.new_turn_id(), status="completed", user_message="hi", tool_results=None,
        text="hello", tool_calls=[], stop_reason="end_turn", error="", model="claude-haiku-4-5",
        provider="anthropic", decided_by="request", call_id="metis_x",
        usage=Usage(input_tokens=10, output_tokens=2), cost_usd=Decimal("0.00002"),
    )  # fmt: skip
    store.save_turn(session.id, outcome)  # ...and a turn lands before its turns are read
    early = store.whole(read_first)
    assert (early["turn_count"], early["turns"]) == (0, [])
    late = store.whole(AgentSession.objects.get(pk=session.id))
    assert late["turn_count"] == 1 and late["total_cost_usd"] == Decimal("0.00002")
    assert [t["text"] for t in late["turns"]] == ["hello"]


def wait_for_turn(http: httpx.Client, session_id: str) -> dict:
    deadline = time.monotonic() + 20
    while True:
        read = http.get(f"/sessions/{session_id}").json()
        if read["turns"]:
            return read
        assert time.monotonic() < deadline, "the cancelled turn was never stored"
        time.sleep(0.05)


def test_a_client_that_leaves_mid_stream_cancels_the_turn(agent_server, token):
    with client(agent_server, token) as http:
        session = http.post("/sessions", json={"model": "haiku"}).json()
        body = {"content": "[[fault:hang]] a long story", "stream": True}
        with http.stream("POST", f"/sessions/{session['id']}/messages", json=body) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.startswith("data: "):
                    break  # turn.started: the provider is answering; leave now
        # Closing the response closed the connection: the server must notice by itself.
        read = wait_for_turn(http, session["id"])
        after = say(http, session["id"], content="shorter, please")
        history = agent_server.upstream_requests()[-1]["body"]["messages"]
    (turn,) = read["turns"]
    assert turn["status"] == "cancelled"
    assert read["turn_count"] == 1 and turn["cost_usd"] > 0  # the input was billed
    (cancelled, _) = agent_server.events("llm.call_completed")
    assert cancelled["request_id"] == turn["call_id"]
    assert (cancelled["error_class"], cancelled["inbound_shape"]) == ("CANCELLED", "in-process")
    assert cancelled["input_tokens"] > 0
    assert agent_server.upstream_requests()[0]["disconnected"] is True
    # A cancelled turn is not part of the conversation that follows.
    assert after["status"] == "completed"
    assert [m["content"] for m in history] == ["shorter, please"]


@pytest.mark.parametrize("fault", ["hang", "slow:4"], ids=["mid-answer", "before-answer"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_a_client_that_leaves_before_its_answer_cancels_the_turn(agent_server, token, fault,
                                                                 stream):  # fmt: skip
    with client(agent_server, token) as http:
        session = http.post("/sessions", json={"model": "haiku"}).json()
        with pytest.raises(httpx.ReadTimeout):  # the client gives up: it closes the connection
            http.post(f"/sessions/{session['id']}/messages", timeout=1.5, json={
                "content": f"[[fault:{fault}]] a long story", "stream": stream})  # fmt: skip
        read = wait_for_turn(http, session["id"])
    assert read["turns"][0]["status"] == "cancelled"
    (event,) = agent_server.events("llm.call_completed")
    assert event["error_class"] == "CANCELLED"


def test_one_turn_at_a_time_per_session(agent_server, token):
    with client(agent_server, token) as http:
        session = http.post("/sessions", json={"model": "haiku"}).json()
        path = f"/sessions/{session['id']}/messages"
        body = {"content": "[[fault:hang]] go on", "stream": True}
        with http.stream("POST", path, json=body) as response:
            lines = response.iter_lines()  # kept: a discarded iterator closes the connection
            assert next(lines) == "event: turn.started"
            busy = http.post(path, json={"content": "me too"})
        wait_for_turn(http, session["id"])
        free = http.post(path, json={"content": "now?"})
    assert busy.status_code == 409 and busy.json()["error"]["type"] == "conflict_error"
    assert free.status_code == 200


def test_the_dashboard_counts_in_process_calls_per_key(agent_server, token, admin_client):
    with client(agent_server, token) as http:
        session = http.post("/sessions", json={"model": "haiku"}).json()
        for text in ("one", "two"):
            say(http, session["id"], content=text)
    agent_server.events()  # written
    page = admin_client.get("/dashboard/?tab=identity").content.decode()
    assert re.findall(r'<td class="shapes">([^<]*)</td>', page) == ["in-process 2"]
    by_key = admin_client.get("/analytics/by_key").json()["keys"]
    assert [k["inbound_shapes"] for k in by_key] == [{"in-process": 2}]


def test_a_stream_the_provider_cuts_short_ends_in_an_error_event(agent_server, token):
    with client(agent_server, token) as http:
        session = http.post("/sessions", json={"model": "haiku"}).json()
        response = http.post(f"/sessions/{session['id']}/messages",
                             json={"content": "[[fault:cut:3]] hello", "stream": True})  # fmt: skip
        whole = http.post(f"/sessions/{session['id']}/messages",
                          json={"content": "[[fault:cut:3]] again"})  # fmt: skip
        read = http.get(f"/sessions/{session['id']}").json()
    names = [line for line in response.text.splitlines() if line.startswith("event: ")]
    assert names[0] == "event: turn.started" and names[-1] == "event: error"
    assert whole.status_code == 502 and whole.json()["error"]["type"] == "api_error"
    assert [t["status"] for t in read["turns"]] == ["error", "error"]
