"""`metis chat`'s side of the sessions contract, against a fake server in httpx's
MockTransport: the events it reads, what it prints, and the one line it says when
anything goes wrong. tests/integration/test_chat.py drives the real command."""

from __future__ import annotations

import io
import json
from decimal import Decimal

import httpx
import pytest

from metis_site.chat import api, render
from metis_site.chat.api import ChatError, Sessions
from metis_site.chat.repl import Chat

SUMMARY = {"id": "ses_1", "model": None, "turn_count": 1, "total_cost_usd": Decimal("0.000546")}
TURN = {
    "id": "turn_1",
    "status": "completed",
    "text": "Hello there",
    "model": "claude-haiku-4-5",
    "decided_by": "routing_rules",
    "input_tokens": 12,
    "output_tokens": 30,
    "cost_usd": Decimal("0.000546"),
}


def sse(*events: tuple[str, dict]) -> bytes:
    return b"".join(
        f"event: {name}\ndata: {json.dumps(data, default=str)}\n\n".encode()
        for name, data in events
    )


def answer(text: str = "Hello there") -> bytes:
    started = {"turn_id": "turn_1", "model": "claude-haiku-4-5", "provider": "anthropic",
               "decided_by": "routing_rules"}  # fmt: skip
    half = len(text) // 2
    return sse(
        ("turn.started", started),
        ("text.delta", {"text": text[:half]}),
        ("text.delta", {"text": text[half:]}),
    ) + (  # costs as exact JSON numbers, as the server writes them
        b'event: turn.completed\ndata: {"turn": {"text": "Hello there", "input_tokens": 12,'
        b' "output_tokens": 30, "cost_usd": 0.000546}, "session": {"id": "ses_1",'
        b' "turn_count": 1, "total_cost_usd": 0.000546}}\n\n'
    )


def reply(status: int, obj: object) -> httpx.Response:
    """A JSON response; Decimal goes out as a plain number (its digits survive a float)."""
    text = json.dumps(obj, default=lambda d: float(d) if isinstance(d, Decimal) else str(d))
    return httpx.Response(status, content=text, headers={"content-type": "application/json"})


class FakeServer:
    """Answers like `metis serve` would, and remembers what it was asked."""

    def __init__(self, stream: bytes | None = None, **replies: httpx.Response) -> None:
        self.stream = stream if stream is not None else answer()
        self.replies = replies
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        route = f"{request.method} {request.url.path}"
        if route in self.replies:
            return self.replies[route]
        if route == "POST /sessions":
            body = json.loads(request.content)
            return reply(201, {**SUMMARY, "turn_count": 0, **body})
        if route == "PATCH /sessions/ses_1":
            return reply(200, {**SUMMARY, **json.loads(request.content)})
        if route == "POST /sessions/ses_1/messages":
            chunks = [self.stream[i : i + 7] for i in range(0, len(self.stream), 7)]
            return httpx.Response(
                200, headers={"content-type": "text/event-stream"}, stream=Chunks(chunks)
            )
        return reply(404, {"error": {"type": "not_found", "message": "Not Found"}})

    def bodies(self, route: str) -> list[dict]:
        return [json.loads(r.content) for r in self.requests if f"{r.method} {r.url.path}" == route]


class Chunks(httpx.SyncByteStream):
    """A body that arrives in small pieces, so events are cut mid-line."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def __iter__(self):
        yield from self.chunks


def chat_with(server: FakeServer) -> tuple[Chat, io.StringIO]:
    out = io.StringIO()
    return Chat(Sessions("http://metis.test", "gw_x", transport=httpx.MockTransport(server)),
                out=out), out  # fmt: skip


def test_a_turn_streams_and_shows_the_model_the_routing_step_and_the_cost():
    server = FakeServer()
    chat, out = chat_with(server)

    chat.handle("hi")

    assert out.getvalue() == (
        "[claude-haiku-4-5 · routing_rules]\nHello there\n"
        "[12 in · 30 out · $0.000546 · session $0.000546]\n"
    )
    assert server.bodies("POST /sessions") == [{}]  # no model: the server's routing decides
    assert server.bodies("POST /sessions/ses_1/messages") == [{"content": "hi", "stream": True}]
    sent = server.requests[0].headers
    assert sent["authorization"] == "Bearer gw_x" and sent["metis-api-version"] == "1.0"


def test_the_session_is_made_once_and_its_total_follows_the_turns():
    server = FakeServer()
    chat, _ = chat_with(server)

    chat.handle("one")
    chat.handle("two")

    assert len(server.bodies("POST /sessions")) == 1
    assert len(server.bodies("POST /sessions/ses_1/messages")) == 2
    assert chat.session["total_cost_usd"] == Decimal("0.000546")


def test_model_pins_before_the_session_exists_and_unpins_after():
    server = FakeServer()
    chat, out = chat_with(server)

    chat.handle("/model opus")
    assert chat.prompt() == "you (opus)> "
    chat.handle("/model off")

    assert server.bodies("POST /sessions") == [{"model": "opus"}]
    assert server.bodies("PATCH /sessions/ses_1") == [{"model": None}]
    assert chat.prompt() == "you> "
    assert "pinned to opus" in out.getvalue() and "unpinned" in out.getvalue()


def test_new_forgets_the_session_and_the_next_message_makes_another():
    server = FakeServer()
    chat, _ = chat_with(server)
    chat.handle("one")

    chat.handle("/new")
    assert chat.session is None
    chat.handle("two")

    assert len(server.bodies("POST /sessions")) == 2


def test_resume_shows_earlier_turns_briefly_then_the_total():
    cancelled = {**TURN, "id": "turn_2", "status": "cancelled", "text": "Par", "user_message": "b"}
    session = {**SUMMARY, "turn_count": 2, "model": "sonnet",
               "turns": [{**TURN, "user_message": "a " * 80}, cancelled]}  # fmt: skip
    server = FakeServer(**{"GET /sessions/ses_1": reply(200, session)})
    chat, out = chat_with(server)

    chat.handle("/resume ses_1")

    lines = out.getvalue().splitlines()
    assert lines[0].startswith("you> a a") and lines[0].endswith("…")
    assert len(lines[0]) == len("you> ") + render.CLIP
    assert lines[1] == "  [claude-haiku-4-5 · $0.000546] Hello there"
    assert lines[2:4] == ["you> b", "  [claude-haiku-4-5 · $0.000546] (cancelled) Par"]
    assert lines[4] == "session ses_1: 2 turns, $0.000546 so far, pinned to sonnet"
    assert chat.prompt() == "you (sonnet)> "


@pytest.mark.parametrize(
    ("reply", "line"),
    [
        (
            reply(402, {"error": {"type": "budget_exceeded",
                                                "message": "Team budget of $5.00 is spent"}}),
            "metis: Team budget of $5.00 is spent",
        ),
        (reply(404, {"error": {"type": "not_found_error", "message": "No session 'ses_1'."}}),
         "metis: no session 'ses_1' (/sessions lists yours)"),
        (reply(404, {"error": {"type": "not_found_error",
                               "message": "Unknown model 'gpt-9': use a provider model id"}}),
         "metis: Unknown model 'gpt-9': use a provider model id"),
        (reply(401, {"error": {"type": "auth", "message": "Invalid key"}}),
         "metis: the server refused the token: Invalid key"),
        (reply(422, {"detail": "content: field required"}),
         "metis: content: field required"),
        (httpx.Response(502, text="<html>Bad gateway</html>"),
         "metis: the server answered HTTP 502"),
        (httpx.Response(200, html="<html>hello</html>"),
         "metis: http://metis.test did not answer as Metis does (HTTP 200, text/html); is --url"
         " the address of 'metis serve'?"),
    ],
)  # fmt: skip
def test_a_refused_turn_is_one_line(reply, line):
    chat, out = chat_with(FakeServer(**{"POST /sessions/ses_1/messages": reply}))

    chat.handle("hi")

    assert out.getvalue() == line + "\n"


def test_an_error_event_mid_stream_ends_the_answer_with_one_line():
    failed = {"error": {"type": "upstream", "message": "the provider failed"}}
    stream = sse(
        ("turn.started", {"model": "m", "decided_by": "request"}),
        ("text.delta", {"text": "Par"}),
        ("error", failed),
    )
    chat, out = chat_with(FakeServer(stream))

    chat.handle("hi")

    assert out.getvalue() == "[m · request]\nPar\nmetis: the provider failed\n"


def test_a_stream_that_stops_before_the_turn_completes_says_so():
    chat, out = chat_with(FakeServer(sse(("text.delta", {"text": "Par"}))))

    chat.handle("hi")

    assert out.getvalue() == "Par\nmetis: the answer stopped before the turn completed\n"


def test_an_unreachable_server_is_one_line():
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    client = Sessions("http://127.0.0.1:9", "gw_x", transport=httpx.MockTransport(refuse))
    with pytest.raises(ChatError) as caught:
        client.list()
    assert (
        str(caught.value) == "cannot reach Metis at http://127.0.0.1:9 (is 'metis serve' running?)"
    )


def test_commands_that_do_not_exist_or_lack_an_argument_are_one_line():
    chat, out = chat_with(FakeServer())

    assert chat.handle("/frobnicate") and chat.handle("/resume")
    assert not chat.handle("/quit")

    assert out.getvalue().splitlines() == [
        "metis: unknown command /frobnicate; /help lists the commands",
        "metis: /resume needs a session id (/sessions lists them)",
    ]


def test_sessions_lists_newest_first_and_marks_the_current_one():
    listed = [{**SUMMARY, "updated_at": "2026-11-28T14:30:00Z", "title": "hi"},
              {**SUMMARY, "id": "ses_0", "turn_count": 3, "model": "opus",
               "updated_at": "2026-11-27T09:00:00Z", "title": ""}]  # fmt: skip
    server = FakeServer(**{"GET /sessions": reply(200, {"sessions": listed})})
    chat, out = chat_with(server)
    chat.handle("hi")
    out.truncate(0), out.seek(0)

    chat.handle("/sessions")

    assert out.getvalue().splitlines() == [
        "* ses_1  2026-11-28 14:30  1 turn · $0.000546  hi",
        "  ses_0  2026-11-27 09:00  3 turns · $0.000546 · pinned opus",
    ]


def test_money_keeps_the_exact_digits():
    assert render.money(Decimal("1E-7")) == "$0.0000001"
    assert render.money(api.loads("0.1000")) == "$0.1000"
    assert render.money(None) == "$0"


class Stalls(httpx.SyncByteStream):
    """The start of an answer, then a Ctrl-C while the next piece is awaited."""

    def __init__(self) -> None:
        self.closed = False

    def __iter__(self):
        yield sse(("turn.started", {"model": "m", "decided_by": "routing_rules"}))
        yield sse(("text.delta", {"text": "Once upon"}))
        raise KeyboardInterrupt

    def close(self) -> None:
        self.closed = True


def test_ctrl_c_mid_answer_closes_the_stream_and_returns_to_the_prompt():
    stalls = Stalls()
    streaming = httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=stalls)
    chat, out = chat_with(FakeServer(**{"POST /sessions/ses_1/messages": streaming}))

    assert chat.handle("tell me a story")

    assert (
        out.getvalue() == "[m · routing_rules]\nOnce upon\n[cancelled]\n(Ctrl-C again to leave)\n"
    )
    assert stalls.closed, "the connection must close: that is what cancels the turn"
    assert chat.interrupted and chat.cancelled


def test_right_after_a_cancel_a_busy_session_is_waited_for(monkeypatch):
    monkeypatch.setattr("metis_site.chat.repl.CONFLICT_PAUSE", 0)
    busy = {"error": {"type": "conflict_error", "message": "A turn is already running"}}
    server = FakeServer()
    replies = iter([reply(409, busy), reply(409, busy)])
    original = server.__call__

    def conflicted(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/messages"):
            return next(replies, None) or original(request)
        return original(request)

    chat = Chat(Sessions("http://metis.test", "gw_x", transport=httpx.MockTransport(conflicted)),
                out=(out := io.StringIO()))  # fmt: skip
    chat.session, chat.cancelled = {"id": "ses_1"}, True

    chat.handle("still there?")

    assert out.getvalue().endswith("[12 in · 30 out · $0.000546 · session $0.000546]\n")
    assert not chat.cancelled


def test_a_busy_session_is_one_line_when_this_chat_did_not_cancel_anything():
    busy = {"error": {"type": "conflict_error", "message": "A turn is already running"}}
    chat, out = chat_with(FakeServer(**{"POST /sessions/ses_1/messages": reply(409, busy)}))

    chat.handle("hi")

    assert out.getvalue() == "metis: A turn is already running\n"


@pytest.mark.parametrize(
    "keys",
    [
        [KeyboardInterrupt, KeyboardInterrupt],  # Ctrl-C twice at the prompt
        [KeyboardInterrupt, "", KeyboardInterrupt, EOFError],  # not twice in a row
        [EOFError],  # Ctrl-D
        ["/quit"],
    ],
)
def test_leaving_takes_two_ctrl_c_in_a_row_or_ctrl_d_or_quit(monkeypatch, keys):
    pressed = iter(keys)

    def read(prompt: str) -> str:
        key = next(pressed)
        if isinstance(key, type):
            raise key
        return key

    monkeypatch.setattr("builtins.input", read)
    chat, out = chat_with(FakeServer())

    assert chat.run() == 0

    assert next(pressed, None) is None, "left before the last key"
    assert out.getvalue().count("(Ctrl-C again or Ctrl-D to leave)") == keys.count(
        KeyboardInterrupt
    ) - (keys[-1] is KeyboardInterrupt)


@pytest.mark.parametrize("typed", ["../admin", "..", "ses 1", "ses_1/messages"])
def test_a_session_id_that_is_not_one_is_refused_before_asking(typed):
    server = FakeServer()
    chat, out = chat_with(server)

    chat.handle(f"/resume {typed}")

    assert out.getvalue() == f"metis: no session {typed!r} (/sessions lists yours)\n"
    assert server.requests == []
