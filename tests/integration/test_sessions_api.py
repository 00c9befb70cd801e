"""`/sessions/*` on `metis serve`: sessions whose turns run through the gateway's pipeline
in-process (agent/), against the mock provider over loopback, through real sockets."""

from __future__ import annotations

from decimal import Decimal

import httpx
import orjson
import pytest

from identity.models import Quota
from tests.factories import make_key, make_team, make_user, make_workspace

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def alice_key(transactional_db):
    alice = make_user(username="alice")
    return make_key(name="agent-loop", user=alice, team=make_team(name="eng"),
                    workspace=make_workspace(path="/srv/agent"))  # fmt: skip


@pytest.fixture
def alice_token(alice_key) -> str:
    return alice_key[1]


def client(server, token: str | None = None, **headers: str) -> httpx.Client:
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.Client(base_url=server.url, headers=headers, timeout=30)


def new_session(http: httpx.Client, **body) -> dict:
    created = http.post("/sessions", json=body)
    assert created.status_code == 201, created.text
    return created.json()


def say(http: httpx.Client, session_id: str, **body) -> dict:
    answered = http.post(f"/sessions/{session_id}/messages", json=body)
    assert answered.status_code == 200, answered.text
    return answered.json()


def sse(response: httpx.Response) -> list[tuple[str, dict]]:
    events = []
    for block in response.text.split("\n\n"):
        if block.strip():
            name, data = block.split("\n", 1)
            events.append((name.removeprefix("event: "), orjson.loads(data.removeprefix("data: "))))
    return events


def test_a_two_turn_conversation_keeps_its_history_on_the_server(agent_server, alice_token):
    with client(agent_server, alice_token) as http:
        session = new_session(http, model="haiku", title="demo", system="Be brief.")
        first = say(http, session["id"], content="hello")
        second = say(http, session["id"], content="again")
        read = http.get(f"/sessions/{session['id']}")
    assert read.status_code == 200 and read.headers["Metis-API-Version"] == "1.0"
    read = read.json()
    # The client sent only its new message; the server sent the conversation.
    sent = agent_server.upstream_requests()[-1]["body"]
    assert sent["model"] == "claude-haiku-4-5"
    assert sent["system"] == "Be brief."
    assert [(m["role"], m["content"]) for m in sent["messages"]] == [
        ("user", "hello"), ("assistant", first["turn"]["text"]), ("user", "again"),
    ]  # fmt: skip
    assert first["turn"]["text"].endswith("You said: hello")
    assert [t["index"] for t in read["turns"]] == [0, 1]
    turn = read["turns"][1]
    assert turn["status"] == "completed" and turn["user_message"] == "again"
    assert (turn["model"], turn["provider"], turn["decided_by"]) == (
        "claude-haiku-4-5", "anthropic", "request",
    )  # fmt: skip
    assert turn["call_id"] == second["turn"]["call_id"]
    assert read["turn_count"] == 2
    costs = [Decimal(str(t["cost_usd"])) for t in read["turns"]]
    assert all(costs) and Decimal(str(read["total_cost_usd"])) == sum(costs)
    assert read["total_input_tokens"] == sum(t["input_tokens"] for t in read["turns"])
    # Recorded as gateway calls are, arriving in-process, at the cost the turn shows.
    completed = agent_server.events("llm.call_completed")
    assert [e["request_id"] for e in completed] == [t["call_id"] for t in read["turns"]]
    assert {e["inbound_shape"] for e in completed} == {"in-process"}
    assert {(e["key_name"], e["user"], e["team"], e["workspace"]) for e in completed} == {
        ("agent-loop", "alice", "eng", "/srv/agent")
    }
    assert [Decimal(str(e["cost_usd"])) for e in completed] == costs
    decided = agent_server.events("route.decided")
    assert {e["inbound_shape"] for e in decided} == {"in-process"}


def test_an_answer_streams_as_server_sent_events(agent_server, alice_token):
    with client(agent_server, alice_token) as http:
        session = new_session(http, model="sonnet")
        response = http.post(f"/sessions/{session['id']}/messages",
                             json={"content": "tell me a story", "stream": True})  # fmt: skip
        read = http.get(f"/sessions/{session['id']}").json()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse(response)
    names = [name for name, _ in events]
    assert names[0] == "turn.started" and names[-1] == "turn.completed"
    assert set(names[1:-1]) == {"text.delta"} and len(names) > 3
    started, completed = events[0][1], events[-1][1]
    assert started["model"] == "claude-sonnet-4-6" and started["decided_by"] == "request"
    text = "".join(data["text"] for name, data in events if name == "text.delta")
    assert completed["turn"]["text"] == text == read["turns"][0]["text"]
    assert completed["turn"]["id"] == started["turn_id"] == read["turns"][0]["id"]
    assert completed["session"]["turn_count"] == 1
    assert completed["turn"]["output_tokens"] > 0


def test_a_turn_routed_to_an_openai_model_is_translated_there_and_back(agent_server, alice_token):
    with client(agent_server, alice_token) as http:
        session = new_session(http, model="gpt-5-mini")
        first = say(http, session["id"], content="hi")
        second = say(http, session["id"], content="more", stream=False)
    sent = agent_server.upstream_requests()[-1]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["body"]["stream_options"] == {"include_usage": True}
    assert [m["role"] for m in sent["body"]["messages"]] == ["user", "assistant", "user"]
    assert first["turn"]["provider"] == "openai" and first["turn"]["text"]
    assert second["turn"]["input_tokens"] > 0 and second["turn"]["cost_usd"] > 0


def test_a_tool_call_returns_to_the_client_and_its_result_continues_the_turn(
    agent_server, alice_token
):
    weather = {"name": "get_weather", "description": "Weather for a city",
               "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                                "required": ["city"]}}  # fmt: skip
    with client(agent_server, alice_token) as http:
        session = new_session(http, model="haiku", tools=[weather])
        asked = say(http, session["id"], content='[[tool:get_weather {"city": "Paris"}]]')
        call = asked["turn"]["tool_calls"][0]
        too_soon = http.post(f"/sessions/{session['id']}/messages", json={"content": "and?"})
        wrong = http.post(
            f"/sessions/{session['id']}/messages",
            json={"tool_results": [{"tool_use_id": "toolu_other", "content": "x"}]},
        )
        answered = say(
            http,
            session["id"],
            tool_results=[{"tool_use_id": call["id"], "content": "18 C, sunny"}],
        )
        read = http.get(f"/sessions/{session['id']}").json()
    assert asked["turn"]["stop_reason"] == "tool_use"
    assert (call["name"], call["input"]) == ("get_weather", {"city": "Paris"})
    assert too_soon.status_code == 400 and "get_weather" in too_soon.json()["error"]["message"]
    assert wrong.status_code == 400 and wrong.json()["error"]["type"] == "invalid_request_error"
    assert answered["turn"]["stop_reason"] == "end_turn"
    assert read["turns"][1]["tool_results"] == [
        {"tool_use_id": call["id"], "content": "18 C, sunny", "is_error": False}
    ]
    assert read["turns"][1]["user_message"] is None
    sent = agent_server.upstream_requests()[-1]["body"]
    assert sent["tools"][0]["name"] == "get_weather"
    tool_use = sent["messages"][1]["content"][-1]
    result = sent["messages"][2]["content"][0]
    assert tool_use["type"] == "tool_use" and tool_use["id"] == call["id"]
    assert result["type"] == "tool_result" and result["tool_use_id"] == call["id"]
    assert "18 C, sunny" in str(result["content"])


def test_a_streamed_tool_call_is_one_event_with_its_whole_input(agent_server, alice_token):
    tool = {"name": "search", "input_schema": {"type": "object"}}
    with client(agent_server, alice_token) as http:
        session = new_session(http, model="gpt-5-mini", tools=[tool])
        response = http.post(f"/sessions/{session['id']}/messages", json={
            "content": '[[tool:search {"q": "metis"}]]', "stream": True})  # fmt: skip
    events = sse(response)
    uses = [data for name, data in events if name == "tool_use"]
    assert [(u["name"], u["input"]) for u in uses] == [("search", {"q": "metis"})]
    assert events[-1][1]["turn"]["tool_calls"] == uses
    assert events[-1][1]["turn"]["stop_reason"] == "tool_use"


def test_pins_and_unpins_a_model_and_pins_one_turn(agent_server, alice_token):
    with client(agent_server, alice_token) as http:
        session = new_session(http, model="haiku")
        pinned = http.patch(f"/sessions/{session['id']}", json={"model": "opus"})
        opus = say(http, session["id"], content="a")
        once = say(http, session["id"], content="b", model="sonnet")
        again = say(http, session["id"], content="c")
        unpinned = http.patch(f"/sessions/{session['id']}", json={"model": None})
        unrouted = http.post(f"/sessions/{session['id']}/messages", json={"content": "d"})
        unknown = http.patch(f"/sessions/{session['id']}", json={"model": "nonesuch"})
    assert pinned.status_code == 200 and pinned.json()["model"] == "opus"
    assert [t["turn"]["model"] for t in (opus, once, again)] == [
        "claude-opus-4-6", "claude-sonnet-4-6", "claude-opus-4-6",
    ]  # fmt: skip
    assert unpinned.json()["model"] is None
    # Nothing pinned, and no rule, pattern or workspace default: a clear 400.
    assert unrouted.status_code == 400
    assert "routing.yaml" in unrouted.json()["error"]["message"]
    assert unknown.status_code == 404 and "nonesuch" in unknown.json()["error"]["message"]


def test_a_refused_budget_is_a_json_error_and_recorded(agent_server, alice_key):
    key, token = alice_key
    Quota.objects.create(team=key.team, period="day", hard_cap_usd="0")
    with client(agent_server, token) as http:
        session = new_session(http, model="haiku")
        refused = http.post(f"/sessions/{session['id']}/messages",
                            json={"content": "hi", "stream": True})  # fmt: skip
        read = http.get(f"/sessions/{session['id']}").json()
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/json"
    error = refused.json()["error"]
    assert error["type"] == "budget_exceeded" and "Budget exceeded" in error["message"]
    assert read["turns"] == [] and read["turn_count"] == 0
    (event,) = agent_server.events("llm.call_completed")
    assert (event["inbound_shape"], event["error_class"]) == ("in-process", "QUOTA_EXCEEDED")
    assert agent_server.upstream_requests() == []


def test_the_provider_s_error_is_a_json_error(agent_server, alice_token):
    with client(agent_server, alice_token) as http:
        session = new_session(http, model="haiku")
        failed = http.post(f"/sessions/{session['id']}/messages",
                           json={"content": "[[fault:400]]"})  # fmt: skip
    assert failed.status_code == 400
    assert failed.json()["error"]["message"].startswith("The provider refused the turn")
    (event,) = agent_server.events("llm.call_completed")
    assert event["error_class"] == "UPSTREAM_400"


def test_bad_input_gets_a_clear_error_never_a_500(agent_server, alice_token):
    with client(agent_server, alice_token) as http:
        session = new_session(http)
        path = f"/sessions/{session['id']}/messages"
        answers = {
            "not json": http.post(
                path, content=b"{nope", headers={"content-type": "application/json"}
            ),
            "not an object": http.post(path, json=[1]),
            "no content": http.post(path, json={}),
            "empty content": http.post(path, json={"content": "  "}),
            "content and results": http.post(path, json={"content": "a", "tool_results": []}),
            "stream not bool": http.post(path, json={"content": "a", "stream": "yes"}),
            "results with nothing waiting": http.post(path, json={"tool_results": [{}]}),
            "model not a string": http.post(path, json={"content": "a", "model": 3}),
            "form body": http.post(path, data={"content": "a"}),
            "tools not a list": http.post("/sessions", json={"tools": "x"}),
            "tool without name": http.post("/sessions", json={"tools": [{"description": "x"}]}),
            "unknown model": http.post("/sessions", json={"model": "nonesuch"}),
            "NUL in title": http.post("/sessions", json={"title": "a\x00b"}),
            "limit": http.get("/sessions?limit=0"),
            "limit not a number": http.get("/sessions?limit=x"),
            "no such session": http.get("/sessions/ses_nope"),
        }
    statuses = {name: response.status_code for name, response in answers.items()}
    assert statuses == {
        "not json": 400, "not an object": 400, "no content": 400, "empty content": 400,
        "content and results": 400, "stream not bool": 400, "results with nothing waiting": 400,
        "model not a string": 400, "form body": 415, "tools not a list": 400,
        "tool without name": 400, "unknown model": 404, "NUL in title": 400, "limit": 400,
        "limit not a number": 400, "no such session": 404,
    }  # fmt: skip
    for name, response in answers.items():
        assert set(response.json()["error"]) == {"type", "message"}, name
    assert "limit" in answers["limit not a number"].json()["error"]["message"]


def test_metis_api_version_is_negotiated(agent_server, alice_token, settings):
    settings.METIS_API_DEPRECATED = {"0.9": "Sun, 30 May 2027 00:00:00 GMT"}
    with client(agent_server, alice_token) as http:
        old = http.get("/sessions", headers={"Metis-API-Version": "0.9"})
        ok = http.get("/sessions", headers={"Metis-API-Version": "1.0"})
        unknown = http.get("/sessions", headers={"Metis-API-Version": "0.1"})
        docs = http.get("/sessions/openapi.json")
    assert ok.status_code == 200 and ok.headers["Metis-API-Version"] == "1.0"
    assert old.status_code == 200 and old.headers["Deprecation"] == "true"
    assert old.headers["Metis-API-Version"] == "0.9"
    assert unknown.status_code == 400 and "Unsupported" in unknown.json()["error"]["message"]
    paths = docs.json()["paths"]
    assert {"/sessions", "/sessions/{session_id}", "/sessions/{session_id}/messages"} <= set(paths)
    body = paths["/sessions/{session_id}/messages"]["post"]["requestBody"]
    assert set(body["content"]["application/json"]["schema"]["properties"]) == {
        "content", "tool_results", "stream", "model",
    }  # fmt: skip


def test_delete_removes_a_session(agent_server, alice_token):
    with client(agent_server, alice_token) as http:
        session = new_session(http, model="haiku")
        say(http, session["id"], content="hi")
        deleted = http.delete(f"/sessions/{session['id']}")
        gone = http.get(f"/sessions/{session['id']}")
        listed = http.get("/sessions").json()["sessions"]
    assert deleted.status_code == 204 and gone.status_code == 404 and listed == []
    assert len(agent_server.events("llm.call_completed")) == 1  # the call stays recorded


def test_a_key_s_allowed_models_hold_for_its_sessions(agent_server):
    _, token = make_key(name="haiku-only", allowed_models=["haiku"])
    with client(agent_server, token) as http:
        refused_pin = http.post("/sessions", json={"model": "opus"})
        session = new_session(http, model="haiku")
        refused_turn = http.post(f"/sessions/{session['id']}/messages",
                                 json={"content": "hi", "model": "opus"})  # fmt: skip
        allowed = say(http, session["id"], content="hi")
    assert refused_pin.status_code == 403
    assert refused_pin.json()["error"]["type"] == "permission_error"
    assert refused_turn.status_code == 403 and "opus" in refused_turn.json()["error"]["message"]
    assert allowed["turn"]["model"] == "claude-haiku-4-5"


def test_budgets_held_in_this_process_alone_are_warned_of_once(
    agent_server, alice_key, caplog, monkeypatch
):
    from agent import pipeline

    monkeypatch.setattr(pipeline, "_warned", False)
    key, token = alice_key
    Quota.objects.create(team=key.team, period="day", hard_cap_usd="10")
    with client(agent_server, token) as http:
        session = new_session(http, model="haiku")
        for text in ("one", "two"):
            say(http, session["id"], content=text)
    warnings = [r.getMessage() for r in caplog.records if "set REDIS_URL" in r.getMessage()]
    assert len(warnings) == 1
