"""The OpenAI Responses API, formatted as https://platform.openai.com/docs/api-reference/responses
does (field for field, the types of the openai SDK's `types/responses/`).

Quirks reproduced on purpose, because the gateway must handle them:
- `usage.input_tokens` already includes `input_tokens_details.cached_tokens`, and
  `output_tokens` includes `output_tokens_details.reasoning_tokens`. Prompt caching is
  automatic, as for Chat Completions.
- Streams are semantic events with `event:` lines and a `sequence_number` on each, and no
  `[DONE]`: the last event (`response.completed`, or `response.incomplete` when
  `max_output_tokens` ran out) carries the whole response, usage included.
- Reasoning models (o-series, gpt-5) put a reasoning item first in `output`. It carries
  `encrypted_content` only when `include` asks for "reasoning.encrypted_content", and a
  summary only when `reasoning.summary` is set; its tokens are hidden but billed.
- Responses are stored unless `store: false`: GET and DELETE /v1/responses/{id},
  /input_items (newest first by default) and `previous_response_id` read them back.
  Only a `background: true` response can be cancelled; it waits, queued, until it is
  retrieved (then it completes) or cancelled.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import secrets
import time
from dataclasses import dataclass, replace
from typing import Any

import orjson
from aiohttp import web

from mock_provider.ledger import api_key_of
from mock_provider.openai import REASONING_TOKENS, _cached_tokens, _headers, _unauthorized, error
from mock_provider.reply import ANY_TOOL, Prompt, Reply, _arguments_for, compose, words
from mock_provider.wire import Event, Exchange, apply_fault, recorded, send_body, send_events

STORE_SIZE = 1000
DEFAULT_PAGE, MAX_PAGE = 20, 100
ID_PREFIXES = {
    "message": "msg_",
    "function_call": "fc_",
    "function_call_output": "fco_",
    "reasoning": "rs_",
}
# What OpenAI checks before it answers, as the types each field must have.
TYPES: dict[str, type | tuple[type, ...]] = {
    "tools": list,
    "include": list,
    "previous_response_id": str,
    "instructions": (str, list),
    "max_output_tokens": int,
    "stream": bool,
    "store": bool,
    "background": bool,
    "metadata": dict,
    "reasoning": dict,
    "text": dict,
}
EMPTY_TEXT = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}


@dataclass(slots=True)
class Stored:
    response: dict[str, Any]
    input_items: list[dict[str, Any]]  # this call's input, each with an id
    context: list[dict[str, Any]]  # the whole conversation, for a later previous_response_id
    finished: dict[str, Any] | None = None  # a queued background response, once done


@recorded
async def create(ex: Exchange) -> web.StreamResponse:
    if problem := _invalid(ex):
        return problem
    body = ex.body
    history: list[dict[str, Any]] = []
    if (previous := body.get("previous_response_id")) is not None:
        stored = ex.state.responses.get(previous)
        if stored is None:
            return error(400, f"Previous response with id '{previous}' not found.")
        history = stored.context
    items = _input_items(body.get("input"))
    prompt, reasoning = prompt_from(body, [*history, *items])
    if failed := await apply_fault(ex, prompt.last_user_text, error):
        return failed
    stream = body.get("stream") is True
    if ex.state.always_fixed or ex.request.headers.get("x-mock-fixed") == "1":
        key = ("responses", body["model"], stream)
        fixed = ex.state.fixed_body(key, lambda: _fixed(body, stream))
        if stream:
            return await send_events(ex, [(fixed, False)], _headers())
        return await send_body(ex, fixed, _headers())
    reply = _structured(compose(prompt), body)
    summary = _summary(body, prompt) if reasoning else []
    tools = [body.get("instructions"), body.get("tools")]
    prompt_tokens = max(1, len(orjson.dumps([*tools, history, items])) // 4)
    cached = _cached_tokens(
        {"model": body["model"], "tools": tools, "messages": [*history, *items]},
        prompt_tokens,
        ex.state.cache,
    )
    output = _output(body, reply, summary, reasoning > 0)
    usage = _usage(prompt_tokens, cached, reply, reasoning)
    if ex.fault.zero_output:
        usage |= {"output_tokens": 0, "total_tokens": prompt_tokens}
    ex.state.ledger.add(
        "completions", "openai", api_key_of(ex.request), body["model"],
        uncached_input=prompt_tokens - cached, cache_read=cached, output=usage["output_tokens"],
    )  # fmt: skip
    response = _response(body, output, usage, reply)
    items = _with_ids(items)
    context = [*history, *items, *output]
    if body.get("background") is True:  # stored whatever `store` says: it must be fetched
        queued = {**response, "status": "queued", "output": [], "usage": None}
        queued |= {"incomplete_details": None, "completed_at": None}
        _store(ex, Stored(queued, items, context, finished=response))
        return await send_body(ex, orjson.dumps(queued), _headers())
    if body.get("store") is not False:
        _store(ex, Stored(response, items, context))
    if stream:
        return await send_events(ex, _events(response, reply, summary), _headers())
    return await send_body(ex, orjson.dumps(response), _headers())


@recorded
async def retrieve(ex: Exchange) -> web.StreamResponse:
    if (stored := _lookup(ex)) is None:
        return _not_found(ex)
    if stored.response["status"] == "queued" and stored.finished:  # done once looked at
        stored.response = stored.finished
    return await send_body(ex, orjson.dumps(stored.response), _headers())


@recorded
async def delete(ex: Exchange) -> web.StreamResponse:
    if _lookup(ex) is None:
        return _not_found(ex)
    response_id = ex.request.match_info["response_id"]
    del ex.state.responses[response_id]
    deleted = {"id": response_id, "object": "response", "deleted": True}
    return await send_body(ex, orjson.dumps(deleted), _headers())


@recorded
async def input_items(ex: Exchange) -> web.StreamResponse:
    if (stored := _lookup(ex)) is None:
        return _not_found(ex)
    query = ex.request.query
    try:
        limit = int(query.get("limit", DEFAULT_PAGE))
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_PAGE:
        return error(400, f"Invalid 'limit': expected an integer from 1 to {MAX_PAGE}.")
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        return error(400, "Invalid 'order': expected 'asc' or 'desc'.")
    items = stored.input_items if order == "asc" else stored.input_items[::-1]
    if after := query.get("after"):
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    page = items[:limit]
    listed = {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(items) > limit,
    }
    return await send_body(ex, orjson.dumps(listed), _headers())


@recorded
async def cancel(ex: Exchange) -> web.StreamResponse:
    if (stored := _lookup(ex)) is None:
        return _not_found(ex)
    response = stored.response
    if not response["background"]:
        return error(400, "Only responses created with background=true can be cancelled.")
    if response["status"] == "queued":
        response["status"], stored.finished = "cancelled", None
    return await send_body(ex, orjson.dumps(response), _headers())


def prompt_from(body: dict[str, Any], items: list[dict[str, Any]]) -> tuple[Prompt, int]:
    """The neutral prompt, and the hidden reasoning tokens this model spends first."""
    last_user = next((i for i in reversed(items) if i.get("role") == "user"), {})
    last = items[-1] if items else {}
    tools = [
        (tool["name"], tool.get("parameters") or {})
        for tool in body.get("tools") or []
        if isinstance(tool, dict) and tool.get("type") == "function"
        if isinstance(tool.get("name"), str)
    ]
    choice, forced = body.get("tool_choice"), None
    if choice == "none":
        tools = []
    elif choice == "required":
        forced = ANY_TOOL
    elif isinstance(choice, dict) and choice.get("type") == "function":
        forced = choice.get("name")
    limit = body.get("max_output_tokens")
    limit = limit if isinstance(limit, int) else None
    model = body["model"]
    reasoning = REASONING_TOKENS if model.startswith(("o", "gpt-5")) else 0
    if _mapping(body.get("reasoning")).get("effort") == "none":
        reasoning = 0
    if limit is not None:
        reasoning = min(reasoning, limit)
    tool_result = None
    if last.get("type") == "function_call_output":
        tool_result = _text_of(last.get("output"))
    prompt = Prompt(
        model=model,
        last_user_text=_text_of(last_user.get("content")),
        tool_result=tool_result,
        tools=tools,
        forced_tool=forced,
        max_tokens=None if limit is None else limit - reasoning,
    )
    return prompt, reasoning


def _input_items(value: Any) -> list[dict[str, Any]]:
    """The input as a list of items in their full form (a string is one user message)."""
    if isinstance(value, str):
        value = [{"role": "user", "content": value}]
    items = []
    for raw in value or []:
        item = dict(raw)
        if item.setdefault("type", "message") == "message":
            content = item.get("content")
            if isinstance(content, str):
                part = "output_text" if item.get("role") == "assistant" else "input_text"
                item["content"] = [{"type": part, "text": content}]
            item.setdefault("status", "completed")
        items.append(item)
    return items


def _with_ids(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Input items as input_items lists them: each with an id (after usage is counted, so
    that fresh ids cannot change it)."""
    return [
        {"id": ID_PREFIXES.get(item["type"], "item_") + secrets.token_hex(24), **item}
        if "id" not in item
        else item
        for item in items
    ]


def _structured(reply: Reply, body: dict[str, Any]) -> Reply:
    """With text.format json_schema or json_object, the answer is JSON (schema-valid)."""
    fmt = _mapping(_mapping(body.get("text")).get("format"))
    if reply.tool or fmt.get("type") not in ("json_schema", "json_object"):
        return reply
    if fmt.get("type") == "json_schema":
        value = _arguments_for(fmt.get("schema") or {})
    else:
        value = {"answer": "".join(reply.text).strip()}
    return replace(reply, text=words(orjson.dumps(value).decode()), stop="end")


def _summary(body: dict[str, Any], prompt: Prompt) -> list[str]:
    """The reasoning summary's pieces, when asked for; the mock's thinking, in other words."""
    if not _mapping(body.get("reasoning")).get("summary"):
        return []
    return compose(replace(prompt, thinking=True, max_tokens=None)).thinking


def _output(
    body: dict[str, Any], reply: Reply, summary: list[str], reasoned: bool
) -> list[dict[str, Any]]:
    output: list[dict[str, Any]] = []
    if reasoned:
        item: dict[str, Any] = {"id": f"rs_{secrets.token_hex(24)}", "type": "reasoning"}
        item["summary"] = [{"type": "summary_text", "text": "".join(summary)}] if summary else []
        if "reasoning.encrypted_content" in (body.get("include") or []):
            digest = hashlib.blake2b(orjson.dumps([body["model"], summary]), digest_size=48)
            item["encrypted_content"] = (
                "gAAAAA" + base64.urlsafe_b64encode(digest.digest()).decode()
            )
        output.append(item)
    status = "incomplete" if reply.stop == "max_tokens" else "completed"
    if reply.text or not reply.tool:
        text = {**EMPTY_TEXT, "text": "".join(reply.text)}
        message = {"id": f"msg_{secrets.token_hex(24)}", "type": "message", "status": status}
        output.append(message | {"content": [text], "role": "assistant"})
    if reply.tool:
        output.append(
            {
                "id": f"fc_{secrets.token_hex(24)}",
                "type": "function_call",
                "status": "completed",
                "arguments": "".join(reply.tool.pieces),
                "call_id": f"call_{secrets.token_hex(12)}",
                "name": reply.tool.name,
            }
        )
    return output


def _usage(prompt_tokens: int, cached: int, reply: Reply, reasoning: int) -> dict[str, Any]:
    output = reply.output_tokens + reasoning
    return {
        "input_tokens": prompt_tokens,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": prompt_tokens + output,
    }


def _response(
    body: dict[str, Any], output: list[dict[str, Any]], usage: dict[str, Any], reply: Reply
) -> dict[str, Any]:
    now = int(time.time())
    reasoning = _mapping(body.get("reasoning"))
    reasoner = body["model"].startswith(("o", "gpt-5"))
    incomplete = reply.stop == "max_tokens"
    tools = [
        {"description": None, "strict": True, **tool} if tool.get("type") == "function" else tool
        for tool in body.get("tools") or []
    ]
    return {
        "id": f"resp_{secrets.token_hex(24)}",
        "object": "response",
        "created_at": now,
        "status": "incomplete" if incomplete else "completed",
        "background": body.get("background") is True,
        "completed_at": None if incomplete else now,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": body.get("max_tool_calls"),
        "model": body["model"],
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "prompt_cache_key": body.get("prompt_cache_key"),
        "reasoning": {
            "effort": reasoning.get("effort", "medium" if reasoner else None),
            "summary": reasoning.get("summary"),
        },
        "safety_identifier": body.get("safety_identifier"),
        "service_tier": "default",
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": tools,
        "top_logprobs": 0,
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "usage": usage,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


def _events(response: dict[str, Any], reply: Reply, summary: list[str]) -> list[Event]:
    """The stream of `response`, in the order OpenAI sends it."""
    numbers = itertools.count()
    events: list[Event] = []

    def emit(kind: str, piece: bool = False, **fields: Any) -> None:
        data = {"type": kind, "sequence_number": next(numbers), **fields}
        events.append(
            (b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n", piece)
        )

    head = {**response, "status": "in_progress", "output": [], "usage": None}
    head |= {"incomplete_details": None, "completed_at": None}
    emit("response.created", response=head)
    emit("response.in_progress", response=head)
    for index, item in enumerate(response["output"]):
        at = {"item_id": item["id"], "output_index": index}
        if item["type"] == "reasoning":
            emit("response.output_item.added", output_index=index, item={**item, "summary": []})
            for number, part in enumerate(item["summary"]):
                empty = {**part, "text": ""}
                emit(
                    "response.reasoning_summary_part.added", **at, summary_index=number, part=empty
                )
                for piece in summary:
                    emit("response.reasoning_summary_text.delta", True, **at,
                         summary_index=number, delta=piece)  # fmt: skip
                emit("response.reasoning_summary_text.done", **at, summary_index=number,
                     text=part["text"])  # fmt: skip
                emit("response.reasoning_summary_part.done", **at, summary_index=number, part=part)
        elif item["type"] == "message":
            opened = {**item, "status": "in_progress", "content": []}
            emit("response.output_item.added", output_index=index, item=opened)
            part, text = item["content"][0], item["content"][0]["text"]
            emit("response.content_part.added", **at, content_index=0, part=EMPTY_TEXT)
            for piece in reply.text:
                emit("response.output_text.delta", True, **at, content_index=0, delta=piece,
                     logprobs=[])  # fmt: skip
            emit("response.output_text.done", **at, content_index=0, text=text, logprobs=[])
            emit("response.content_part.done", **at, content_index=0, part=part)
        else:
            opened = {**item, "status": "in_progress", "arguments": ""}
            emit("response.output_item.added", output_index=index, item=opened)
            for piece in reply.tool.pieces if reply.tool else []:
                emit("response.function_call_arguments.delta", True, **at, delta=piece)
            emit("response.function_call_arguments.done", **at, arguments=item["arguments"])
        emit("response.output_item.done", output_index=index, item=item)
    final = "response.incomplete" if response["status"] == "incomplete" else "response.completed"
    emit(final, response=response)
    return events


def _fixed(body: dict[str, Any], stream: bool) -> bytes:
    reply = Reply([], words("Hello from the mock provider."), None, "end")
    response = _response(body, _output(body, reply, [], False), _usage(10, 0, reply, 0), reply)
    if stream:
        return b"".join(data for data, _ in _events(response, reply, []))
    return orjson.dumps(response)


def _store(ex: Exchange, stored: Stored) -> None:
    responses = ex.state.responses
    if len(responses) >= STORE_SIZE:  # a long-running demo must not grow without bound
        del responses[next(iter(responses))]
    responses[stored.response["id"]] = stored


def _lookup(ex: Exchange) -> Stored | None:
    if _unauthorized(ex):
        return None
    return ex.state.responses.get(ex.request.match_info["response_id"])


def _not_found(ex: Exchange) -> web.Response:
    if denied := _unauthorized(ex):
        return denied
    response_id = ex.request.match_info["response_id"]
    return error(404, f"Response with id '{response_id}' not found.")


def _invalid(ex: Exchange) -> web.Response | None:
    if denied := _unauthorized(ex):
        return denied
    body = ex.body
    if not isinstance(body, dict):
        return error(400, "We could not parse the JSON body of your request.")
    if not isinstance(body.get("model"), str) or not body["model"]:
        return error(400, "Missing required parameter: 'model'.")
    value = body.get("input")
    if value is None and body.get("previous_response_id") is None:
        return error(400, "Missing required parameter: 'input'.")
    if value is not None and not isinstance(value, str | list):
        return error(400, "Invalid type for 'input': expected a string or an array of items.")
    if isinstance(value, list) and not all(isinstance(item, dict) for item in value):
        return error(400, "Invalid 'input': every item must be an object.")
    for name, kinds in TYPES.items():
        if body.get(name) is not None and not isinstance(body[name], kinds):
            return error(400, f"Invalid type for '{name}'.")
    if not all(isinstance(tool, dict) for tool in body.get("tools") or []):
        return error(400, "Invalid 'tools': every tool must be an object.")
    if not all(isinstance(name, str) for name in body.get("include") or []):
        return error(400, "Invalid 'include': expected an array of strings.")
    return None


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else []
    kinds = ("input_text", "output_text", "text")
    texts = [p.get("text") for p in parts if isinstance(p, dict) and p.get("type") in kinds]
    return "\n".join(t for t in texts if isinstance(t, str))


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
