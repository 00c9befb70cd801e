"""`/sessions/*` on `metis serve`: agent sessions whose turns the gateway's pipeline runs
in this process (agent/pipeline.py), with the routing chain choosing the model unless
the session or the message pins one. The wire contract: README, "The agent surface".

Conventions are the analytics API's: `Metis-API-Version` on every answer, money as JSON
numbers with their exact digits, the same viewers (agent/access.py). Errors are
`{"error": {"type", "message"}}`. Bodies are JSON, and a POST must say so
(`Content-Type: application/json`): a page elsewhere cannot then post to a local
`metis serve` without the browser asking first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator
from typing import Any

import orjson
from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from ninja import NinjaAPI
from ninja.errors import ValidationError

from agent import conversation, pipeline, store
from agent.access import Refused, Who, caller_for_key, who
from agent.conversation import Answer
from agent.models import AgentSession
from analytics import versioning
from analytics.api import JSONRenderer, _default
from gateway import calls
from gateway.errors import GatewayError
from gateway.proxy import SSE_HEADERS
from gateway.shapes import internal

logger = logging.getLogger(__name__)
MAX_LIST = 500
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403:
               "permission_error", 404: "not_found_error", 409: "conflict_error",
               413: "request_too_large", 429: "rate_limit_error"}  # fmt: skip
REFUSALS = {"QUOTA_EXCEEDED": "budget_exceeded", "RATE_LIMITED": "rate_limited",
            "BUDGET_STORE_UNAVAILABLE": "budget_store_unavailable"}  # fmt: skip

api = NinjaAPI(
    title="Metis agent sessions",
    version=versioning.LATEST,
    urls_namespace="sessions",
    renderer=JSONRenderer(),
    docs_url="/sessions/docs",
    openapi_url="/sessions/openapi.json",
)
# Sessions with a turn in flight (one at a time each). Weak: a turn whose response was
# dropped unread (the client left between the view's return and its first byte) frees
# its session when it is collected.
_running: weakref.WeakValueDictionary[str, RunningTurn] = weakref.WeakValueDictionary()


def error_body(type_: str, message: str) -> bytes:
    return orjson.dumps({"error": {"type": type_, "message": message}})


def refusal_of(exc: GatewayError) -> Refused:
    type_ = REFUSALS.get(exc.error_class) or ERROR_TYPES.get(exc.status, "api_error")
    return Refused(exc.status, type_, exc.message)


def versioned(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    try:
        version = versioning.negotiate(request.headers.get(versioning.HEADER))
    except versioning.UnsupportedVersion:
        version = versioning.LATEST
    for name, value in versioning.response_headers(version).items():
        response[name] = value
    return response


def answer(request: HttpRequest, data: Any, status: int = 200) -> HttpResponse:
    body = orjson.dumps(data, default=_default)
    return versioned(request, HttpResponse(body, status=status, content_type="application/json"))


@api.exception_handler(Refused)
def refused(request: HttpRequest, exc: Refused) -> HttpResponse:
    response = HttpResponse(error_body(exc.type, exc.message), status=exc.status,
                            content_type="application/json")  # fmt: skip
    if exc.status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="metis"'
    return versioned(request, response)


@api.exception_handler(GatewayError)
def gateway_error(request: HttpRequest, exc: GatewayError) -> HttpResponse:
    response = refused(request, refusal_of(exc))
    for name, value in exc.headers.items():
        response[name] = value
    return response


@api.exception_handler(ValidationError)
def invalid(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg')}" for e in exc.errors
    )
    return refused(request, Refused(400, "invalid_request_error", problems or "invalid request"))


@api.exception_handler(versioning.UnsupportedVersion)
def unsupported_version(request: HttpRequest, exc: versioning.UnsupportedVersion) -> HttpResponse:
    return refused(request, Refused(400, "invalid_request_error", str(exc)))


async def begin(request: HttpRequest) -> Who:
    versioning.negotiate(request.headers.get(versioning.HEADER))
    return await who(request)


def json_body(request: HttpRequest, *, required: bool = True) -> dict[str, Any]:
    if not request.body:
        if required:
            raise Refused(400, "invalid_request_error", "The request needs a JSON body.")
        return {}
    if request.method == "POST" and request.content_type != "application/json":
        raise Refused(415, "invalid_request_error", "Send the body as Content-Type: "
                      "application/json.")  # fmt: skip
    try:
        body = orjson.loads(request.body)
    except orjson.JSONDecodeError as exc:
        raise Refused(400, "invalid_request_error", f"The body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise Refused(400, "invalid_request_error", "The body must be a JSON object.")
    return body


def text_field(body: dict, name: str, *, limit: int | None = None) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise Refused(400, "invalid_request_error", f"{name} must be a string")
    if limit is not None and len(value) > limit:
        raise Refused(400, "invalid_request_error", f"{name} is longer than {limit} characters")
    if "\x00" in value:
        raise Refused(400, "invalid_request_error", f"{name} must not contain NUL characters")
    return value


def model_field(body: dict) -> str | None:
    model = text_field(body, "model", limit=200)
    if model is not None and (not model.strip() or not model.isprintable()):
        raise Refused(400, "invalid_request_error", "model must be a model name or alias")
    return model.strip() if model else None


def tool_defs(body: dict) -> list[dict]:
    tools = body.get("tools")
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise Refused(400, "invalid_request_error", "tools must be a list of tool definitions")
    checked = []
    for tool in tools:
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str) or not tool["name"]:
            raise Refused(400, "invalid_request_error", "each tool needs a name")
        schema = tool.get("input_schema", {"type": "object"})
        description = tool.get("description")
        if not isinstance(schema, dict) or not isinstance(description, str | None):
            raise Refused(400, "invalid_request_error", f"tool {tool['name']!r}: input_schema "
                          "must be a JSON schema object and description a string")  # fmt: skip
        checked.append({"name": tool["name"], "description": description or "",
                        "input_schema": schema})  # fmt: skip
    return checked


# -- sessions -------------------------------------------------------------------------


@api.post("/sessions", tags=["sessions"])
async def create_session(request: HttpRequest) -> HttpResponse:
    """Create a session in the key's workspace. Body (all optional): `model` (a pin),
    `system`, `tools` (Anthropic-style), `title`, and `key_id` when signed in rather
    than calling with the key's token."""
    who_ = await begin(request)
    body = json_body(request, required=False)
    model, tools = model_field(body), tool_defs(body)
    system = text_field(body, "system") or ""
    title = text_field(body, "title", limit=200) or ""
    if who_.caller is not None:
        caller = who_.caller
    else:
        key_id = text_field(body, "key_id", limit=32)
        if not key_id:
            raise Refused(400, "invalid_request_error", "Say which gateway key the session "
                          "uses: call with its token (Authorization: Bearer gw_…) or send "
                          "key_id.")  # fmt: skip
        if not who_.may_use_key(key_id):
            raise Refused(404, "not_found_error", f"No gateway key {key_id!r}.")
        caller = await caller_for_key(who_, key_id)
    if model:
        await pipeline.route(caller, model, tools=bool(tools))  # an unknown model is a 404 now
    key = caller.key
    session = await AgentSession.objects.acreate(
        id=store.new_session_id(), title=title, model=model or "", system=system, tools=tools,
        gateway_key_id=key.id, user=key.user or "", team=key.team or "",
        workspace=key.workspace_path,
    )  # fmt: skip
    return answer(request, await sync_to_async(store.whole)(session), status=201)


@api.get("/sessions", tags=["sessions"])
async def list_sessions(request: HttpRequest, limit: int = 50) -> HttpResponse:
    """The sessions this caller may see, most recently used first."""
    who_ = await begin(request)
    if not 1 <= limit <= MAX_LIST:
        raise Refused(400, "invalid_request_error", f"limit must be 1 to {MAX_LIST}")

    def listed() -> list[dict]:
        rows = store.visible(who_.viewer).order_by("-updated_at", "-id")[:limit]
        return [store.summary(s) for s in rows]

    return answer(request, {"sessions": await sync_to_async(listed)()})


@api.get("/sessions/{session_id}", tags=["sessions"])
async def read_session(request: HttpRequest, session_id: str) -> HttpResponse:
    """A session with its turns: each turn's model, the routing step that chose it
    (`decided_by`), tokens and cost; and the session's totals."""
    who_ = await begin(request)
    session = await sync_to_async(store.get)(who_.viewer, session_id)
    return answer(request, await sync_to_async(store.whole)(session))


async def writable(request: HttpRequest, session_id: str) -> tuple[Who, AgentSession]:
    who_ = await begin(request)
    session = await sync_to_async(store.get)(who_.viewer, session_id)
    if not who_.may_write(session):
        raise Refused(403, "permission_error", "You may read this session, not change it: "
                      "it belongs to another user's key.")  # fmt: skip
    return who_, session


@api.patch("/sessions/{session_id}", tags=["sessions"])
async def update_session(request: HttpRequest, session_id: str) -> HttpResponse:
    """`{"model": "opus"}` pins the session's model, `{"model": null}` unpins it (the
    routing chain decides again); `title` renames it."""
    who_, session = await writable(request, session_id)
    body = json_body(request)
    if "model" in body:
        model = model_field(body)
        if model:
            caller = await caller_for_key(who_, session.gateway_key_id)
            await pipeline.route(caller, model, tools=bool(session.tools))
        session.model = model or ""
    if "title" in body:
        session.title = text_field(body, "title", limit=200) or ""
    await session.asave(update_fields=["model", "title", "updated_at"])
    return answer(request, await sync_to_async(store.whole)(session))


@api.delete("/sessions/{session_id}", tags=["sessions"])
async def delete_session(request: HttpRequest, session_id: str) -> HttpResponse:
    """Delete the session and its turns (its calls stay in the analytics record)."""
    _, session = await writable(request, session_id)
    await session.adelete()
    return versioned(request, HttpResponse(status=204))


# -- turns ----------------------------------------------------------------------------


@api.post("/sessions/{session_id}/messages", tags=["sessions"])
async def send_message(request: HttpRequest, session_id: str) -> HttpResponse:
    """Send a message (`content`) or the results of the last turn's tool calls
    (`tool_results`), and get the answer whole or, with `"stream": true`, as server-sent
    events: `turn.started`, `text.delta`, `tool_use`, then `turn.completed` or `error`.
    `model` pins this turn alone. Closing the connection cancels the turn."""
    who_, session = await writable(request, session_id)
    body = json_body(request)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise Refused(400, "invalid_request_error", "stream must be true or false")
    pin = model_field(body) or session.model or None
    turns = await sync_to_async(store.turns_of)(session)
    message, results = conversation.check_message(body, conversation.pending_tool_calls(turns))
    if session.id in _running:
        raise Refused(409, "conflict_error", "A turn is already running in this session; "
                      "wait for it or cancel it.")  # fmt: skip
    _running[session.id] = placeholder = RunningTurn.placeholder()
    try:
        turn = await start_turn(who_, session, turns, pin, message, results)
    finally:
        _running.pop(session.id, None)
        del placeholder
    _running[session.id] = turn
    if stream:
        response = StreamingHttpResponse(turn.sse(), content_type="text/event-stream",
                                         headers=SSE_HEADERS)  # fmt: skip
        return versioned(request, response)
    return answer(request, await turn.whole())


async def start_turn(who_: Who, session: AgentSession, turns: list, pin: str | None,
                     message: str | None, results: list | None) -> RunningTurn:  # fmt: skip
    caller = await caller_for_key(who_, session.gateway_key_id)
    route = await pipeline.route(caller, pin, tools=bool(session.tools))
    request = internal.Request(
        model=route.model,
        messages=[*conversation.history(turns), conversation.asked(message, results)],
        system=[internal.Text(session.system)] if session.system else [],
        tools=conversation.tools_of(session),
    )
    started = await pipeline.start(caller, route, request)
    return RunningTurn(session.id, store.new_turn_id(), started, message, results)


class RunningTurn:
    """A turn the provider is answering: read whole, or relayed as events; stored when it
    ends, cancelled or not."""

    def __init__(self, session_id: str, turn_id: str, started: pipeline.Started,
                 message: str | None, results: list | None) -> None:  # fmt: skip
        self.session_id, self.turn_id, self.started = session_id, turn_id, started
        self.message, self.results = message, results
        self.answer = Answer()
        self.consumed = False  # its events were read (or it was read whole)

    @classmethod
    def placeholder(cls) -> RunningTurn:
        """Holds a session's place while its turn is being routed and sent."""
        turn = cls.__new__(cls)
        turn.consumed = True
        return turn

    def __del__(self) -> None:
        if self.consumed:
            return
        # Never read: the client left before the first byte. Close the provider's
        # connection and record the call as the relay would have.
        call = self.started.call
        self.started.response.close()
        call.error_class = "CANCELLED"
        calls.record(call)

    @property
    def call(self):
        return self.started.call

    def head(self) -> dict:
        route = self.call.route
        return {"turn_id": self.turn_id, "model": route.model, "provider": route.upstream.name,
                "decided_by": route.decided_by}  # fmt: skip

    async def whole(self) -> dict:
        self.consumed, status = True, "cancelled"
        try:
            async with contextlib.aclosing(pipeline.events(self.started)) as events:
                async for event in events:
                    self.answer.read(event)
            status = "error" if self.answer.error else "completed"
        finally:
            saved = await self.store(status)
        if self.answer.error and status == "error":
            raise Refused(502, "api_error", self.answer.error)
        return saved

    async def sse(self) -> AsyncIterator[bytes]:
        self.consumed, status = True, "cancelled"
        try:
            yield event_bytes("turn.started", self.head())
            async with contextlib.aclosing(pipeline.events(self.started)) as events:
                async for event in events:
                    if (out := self.answer.read(event)) is None:
                        continue
                    kind, value = out
                    if kind == "text":
                        yield event_bytes("text.delta", {"text": value})
                    else:
                        yield event_bytes("tool_use", value)
            status = "error" if self.answer.error else "completed"
        finally:
            saved = await self.store(status)
        if status == "error":
            yield event_bytes("error", {"error": {"type": "api_error",
                                                  "message": self.answer.error}})  # fmt: skip
        else:
            yield event_bytes("turn.completed", saved)

    async def store(self, status: str) -> dict:
        """Store the turn, even when the task is being cancelled (shielded)."""
        try:
            return await asyncio.shield(asyncio.ensure_future(self._store(status)))
        finally:
            if _running.get(self.session_id) is self:
                del _running[self.session_id]

    async def _store(self, status: str) -> dict:
        call, answer_ = self.call, self.answer
        outcome = store.Outcome(
            turn_id=self.turn_id, status=status, user_message=self.message,
            tool_results=self.results, text=answer_.text, tool_calls=answer_.tool_calls,
            stop_reason=answer_.stop_reason, error=answer_.error, model=call.route.model,
            provider=call.route.upstream.name, decided_by=call.route.decided_by,
            call_id=call.request_id, usage=call.usage, cost_usd=call.cost_usd,
        )  # fmt: skip
        try:
            saved = await sync_to_async(store.save_turn)(self.session_id, outcome)
        except Exception:
            logger.exception("could not store turn %s of %s", self.turn_id, self.session_id)
            raise
        if saved is None:
            return {"turn": None, "session": None}
        turn, session = saved
        return {"turn": store.turn_json(turn), "session": store.summary(session)}


def event_bytes(name: str, data: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data, default=_default) + b"\n\n"
