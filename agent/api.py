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

import logging
from typing import Any

import orjson
from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from ninja import NinjaAPI
from ninja.errors import ValidationError

from agent import conversation, pipeline, store
from agent import turns as turns_
from agent.access import Refused, Who, caller_for_key, who
from agent.models import AgentSession
from analytics import versioning
from analytics.api import JSONRenderer, _default
from gateway.errors import GatewayError
from gateway.proxy import SSE_HEADERS

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
    if exc.status >= 500:
        # The provider's failure, relayed: logged as such, not as Django's server error.
        logger.warning("%s: %s", request.path, exc.message)
        response._has_been_logged = True
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


def body_doc(properties: dict[str, Any]) -> dict[str, Any]:
    """The request body in the OpenAPI docs (bodies are read here, for errors in this API's
    own format, so ninja does not describe them)."""
    schema = {"type": "object", "properties": properties}
    return {"requestBody": {"content": {"application/json": {"schema": schema}}}}


STRING, NULLABLE = {"type": "string"}, {"type": ["string", "null"]}
TOOL = {"type": "object", "required": ["name"], "properties": {
    "name": STRING, "description": STRING, "input_schema": {"type": "object"}}}  # fmt: skip
RESULT = {"type": "object", "required": ["tool_use_id"], "properties": {
    "tool_use_id": STRING, "content": STRING, "is_error": {"type": "boolean"}}}  # fmt: skip


# -- sessions -------------------------------------------------------------------------


@api.post("/sessions", tags=["sessions"], openapi_extra=body_doc({
    "model": STRING, "system": STRING, "title": STRING, "key_id": STRING,
    "tools": {"type": "array", "items": TOOL}}))  # fmt: skip
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


@api.patch("/sessions/{session_id}", tags=["sessions"],
           openapi_extra=body_doc({"model": NULLABLE, "title": STRING}))  # fmt: skip
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


@api.post("/sessions/{session_id}/messages", tags=["sessions"], openapi_extra=body_doc({
    "content": STRING, "tool_results": {"type": "array", "items": RESULT},
    "stream": {"type": "boolean"}, "model": STRING}))  # fmt: skip
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
    turn = await turns_.start(who_, session, turns, pin, message, results)
    if stream:
        response = StreamingHttpResponse(turn.sse(), content_type="text/event-stream",
                                         headers=SSE_HEADERS)  # fmt: skip
        return versioned(request, response)
    return answer(request, await turn.whole())
