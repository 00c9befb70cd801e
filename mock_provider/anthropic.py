"""The Anthropic Messages API, formatted as https://docs.anthropic.com/en/api/messages does.

Quirks reproduced on purpose, because the gateway must handle them:
- `input_tokens` excludes cache reads and writes; `cache_creation` splits writes by TTL.
- message_start carries input and cache usage with `output_tokens: 1`; message_delta carries
  the cumulative final usage. A ping follows the first content_block_start.
- SSE events have `event:` lines. Errors are `{"type": "error", "error": {...}, "request_id"}`
  with a `request-id` header; 429s add `retry-after` and `retry-after-ms`.
- Either `x-api-key` or `Authorization: Bearer` (OAuth, as Claude Code sends it) is accepted.
- Structured outputs (`output_config.format`, or the beta's `output_format`) answer with text
  that is JSON matching the schema; Claude 3 models refuse them. Thinking is checked as the
  API checks it: a `budget_tokens` of at least 1024 and below `max_tokens`, and no tool
  choice that forces a tool.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from mock_provider.ledger import api_key_of
from mock_provider.reply import ANY_TOOL, Prompt, Reply, compose, words
from mock_provider.wire import (
    Event,
    Exchange,
    PromptCache,
    apply_fault,
    recorded,
    send_body,
    send_events,
)

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
STOP_REASONS = {
    "end": "end_turn",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "tool_use": "tool_use",
}
MODELS = [
    ("claude-opus-4-6", "Claude Opus 4.6"),
    ("claude-sonnet-4-6", "Claude Sonnet 4.6"),
    ("claude-haiku-4-5-20251001", "Claude Haiku 4.5"),
]
SIGNATURE = "bW9jay10aGlua2luZy1zaWduYXR1cmU="  # thinking blocks must carry one to be replayed
PING = b'event: ping\ndata: {"type": "ping"}\n\n'


@dataclass(frozen=True, slots=True)
class InputUsage:
    total: int
    read: int = 0
    write_5m: int = 0
    write_1h: int = 0


def error(status: int, message: str) -> web.Response:
    headers = _headers()
    body = {
        "type": "error",
        "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message},
        "request_id": headers["request-id"],
    }
    if status == 429:
        headers |= {"retry-after": "0", "retry-after-ms": "10"}
    return web.json_response(body=orjson.dumps(body), status=status, headers=headers)


@recorded
async def messages(ex: Exchange) -> web.StreamResponse:
    if problem := _invalid(ex, needs_max_tokens=True):
        return problem
    body = ex.body
    prompt = prompt_from(body)
    if failed := await apply_fault(ex, prompt.last_user_text, error):
        return failed
    stream = body.get("stream") is True
    if ex.state.always_fixed or ex.request.headers.get("x-mock-fixed") == "1":
        key = ("anthropic", body["model"], stream)
        fixed = ex.state.fixed_body(key, lambda: _fixed(body, stream))
        if stream:
            return await send_events(ex, [(fixed, False)], _headers())
        return await send_body(ex, fixed, _headers())
    reply = compose(prompt)
    message = _message(body["model"], reply, _input_usage(body, ex.state.cache))
    if ex.fault.zero_output:
        message["usage"]["output_tokens"] = 0
    usage = message["usage"]
    ex.state.ledger.add(
        "messages", "anthropic", api_key_of(ex.request), body["model"],
        uncached_input=usage["input_tokens"],
        cache_write_5m=usage["cache_creation"]["ephemeral_5m_input_tokens"],
        cache_write_1h=usage["cache_creation"]["ephemeral_1h_input_tokens"],
        cache_read=usage["cache_read_input_tokens"],
        output=usage["output_tokens"],
    )  # fmt: skip
    if stream:
        return await send_events(ex, _events(message, reply), _headers())
    return await send_body(ex, orjson.dumps(message), _headers())


@recorded
async def count_tokens(ex: Exchange) -> web.StreamResponse:
    if problem := _invalid(ex, needs_max_tokens=False):
        return problem
    if failed := await apply_fault(ex, prompt_from(ex.body).last_user_text, error):
        return failed
    usage = _input_usage(ex.body, cache=None)
    return await send_body(ex, orjson.dumps({"input_tokens": usage.total}), _headers())


@recorded
async def models(ex: Exchange) -> web.StreamResponse:
    if denied := _unauthorized(ex):
        return denied
    data = [
        {"type": "model", "id": id_, "display_name": name, "created_at": "2025-10-01T00:00:00Z"}
        for id_, name in MODELS
    ]
    page = {"data": data, "has_more": False, "first_id": MODELS[0][0], "last_id": MODELS[-1][0]}
    return await send_body(ex, orjson.dumps(page), _headers())


def prompt_from(body: dict[str, Any]) -> Prompt:
    messages = [m for m in body["messages"] if isinstance(m, dict)]
    last_user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    blocks = _content_blocks(last_user.get("content"))
    results = [b for b in blocks if b.get("type") == "tool_result"]
    tool_result = None
    if results and messages[-1] is last_user:
        tool_result = _text_of(results[-1].get("content"))
    tools = [
        (t["name"], t.get("input_schema") or {})
        for t in body.get("tools") or []
        if isinstance(t, dict) and isinstance(t.get("name"), str)
    ]
    choice = _mapping(body.get("tool_choice"))
    kind = choice.get("type", "auto")
    forced = (
        {"any": ANY_TOOL, "tool": choice.get("name")}.get(kind) if isinstance(kind, str) else None
    )
    if choice.get("type") == "none":
        tools = []
    stops = body.get("stop_sequences")
    stops = stops if isinstance(stops, list) else []
    answer = _output_format(body).get("schema")
    return Prompt(
        model=body["model"],
        last_user_text=_text_of(blocks),
        tool_result=tool_result,
        tools=tools,
        forced_tool=forced,
        max_tokens=max_tokens if isinstance(max_tokens := body.get("max_tokens"), int) else None,
        stop_sequences=[s for s in stops if isinstance(s, str)],
        thinking=_mapping(body.get("thinking")).get("type") in ("enabled", "adaptive"),
        answer_schema=answer if isinstance(answer, dict) else None,
    )


def _output_format(body: dict[str, Any]) -> dict[str, Any]:
    return _mapping(_mapping(body.get("output_config")).get("format") or body.get("output_format"))


def _unanswerable(body: dict[str, Any]) -> str | None:
    """What the real API refuses in structured outputs and thinking, as it words it."""
    structured = _output_format(body)
    if structured:
        if structured.get("type") != "json_schema" or not isinstance(
            structured.get("schema"), dict
        ):
            return "output_config.format: a json_schema with a schema object is required"
        if body["model"].startswith(("claude-3", "claude-2")):
            return f"'{body['model']}' does not support structured outputs (output_config.format)"
    thinking = _mapping(body.get("thinking"))
    if thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            return "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
        if isinstance(body.get("max_tokens"), int) and budget >= body["max_tokens"]:
            return "`max_tokens` must be greater than `thinking.budget_tokens`"
    forced = _mapping(body.get("tool_choice")).get("type") in ("any", "tool")
    if forced and thinking.get("type") in ("enabled", "adaptive"):
        return "Thinking may not be enabled when tool_choice forces tool use."
    return None


def _input_usage(body: dict[str, Any], cache: PromptCache | None) -> InputUsage:
    """Count input as bytes/4, and cache every prefix ending at a cache_control breakpoint.

    The longest prefix seen before is a cache read; the rest up to the last breakpoint is a
    cache write, attributed to the TTL of the breakpoint that closes each stretch.
    """
    digest = hashlib.blake2b(digest_size=16)
    size, breakpoints = 0, []
    for block in _prompt_blocks(body):
        encoded = orjson.dumps(block)
        size += len(encoded)
        digest.update(encoded)
        control = block.get("cache_control") if isinstance(block, dict) else None
        if isinstance(control, dict):
            breakpoints.append((size // 4, control.get("ttl") == "1h", digest.digest()))
    total = size // 4 + 1  # +1: the assistant turn's opening, which no breakpoint covers
    if cache is None or not breakpoints:
        return InputUsage(total)
    read = next((tokens for tokens, _, key in reversed(breakpoints) if key in cache), 0)
    written, covered = {False: 0, True: 0}, read
    for tokens, one_hour, key in breakpoints:
        if tokens > covered:
            written[one_hour] += tokens - covered
            covered = tokens
        cache.add(key)
    return InputUsage(total, read, written[False], written[True])


def _prompt_blocks(body: dict[str, Any]) -> Iterator[Any]:
    # Anthropic caches in this order: tools, then system, then messages.
    yield body["model"]
    yield from body.get("tools") or []
    system = body.get("system")
    yield from system if isinstance(system, list) else [system or ""]
    for message in body["messages"]:
        yield message.get("role") if isinstance(message, dict) else None
        content = message.get("content") if isinstance(message, dict) else message
        yield from content if isinstance(content, list) else [content]


def _message(model: str, reply: Reply, usage: InputUsage) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if reply.thinking:
        thought = "".join(reply.thinking)
        content.append({"type": "thinking", "thinking": thought, "signature": SIGNATURE})
    if reply.text or not (reply.thinking or reply.tool):
        content.append({"type": "text", "text": "".join(reply.text)})
    if reply.tool:
        tool_id = f"toolu_{secrets.token_hex(12)}"
        call = {"id": tool_id, "name": reply.tool.name, "input": reply.tool.arguments}
        content.append({"type": "tool_use", **call})
    return {
        "id": f"msg_{secrets.token_hex(12)}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": STOP_REASONS[reply.stop],
        "stop_sequence": reply.stop_sequence,
        "usage": {
            "input_tokens": usage.total - usage.read - usage.write_5m - usage.write_1h,
            "cache_creation_input_tokens": usage.write_5m + usage.write_1h,
            "cache_read_input_tokens": usage.read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": usage.write_5m,
                "ephemeral_1h_input_tokens": usage.write_1h,
            },
            "output_tokens": reply.output_tokens,
            "service_tier": "standard",
        },
    }


def _events(message: dict[str, Any], reply: Reply) -> list[Event]:
    usage = message["usage"]
    head = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
    head["usage"] = {**usage, "output_tokens": min(1, usage["output_tokens"])}
    events = [(_sse("message_start", {"type": "message_start", "message": head}), False)]
    for index, block in enumerate(message["content"]):
        start: dict[str, Any]
        deltas: list[dict[str, Any]]
        if block["type"] == "thinking":
            start = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": p} for p in reply.thinking]
        elif block["type"] == "text":
            start = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in reply.text]
        else:
            start = {**block, "input": {}}
            pieces = reply.tool.pieces if reply.tool else []
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in pieces]
        started = {"type": "content_block_start", "index": index, "content_block": start}
        events.append((_sse("content_block_start", started), False))
        if index == 0:
            events.append((PING, False))
        for delta in deltas:
            data = {"type": "content_block_delta", "index": index, "delta": delta}
            events.append((_sse("content_block_delta", data), True))
        if block["type"] == "thinking":
            signed = {"type": "signature_delta", "signature": SIGNATURE}
            data = {"type": "content_block_delta", "index": index, "delta": signed}
            events.append((_sse("content_block_delta", data), False))
        stopped = {"type": "content_block_stop", "index": index}
        events.append((_sse("content_block_stop", stopped), False))
    final = {
        "type": "message_delta",
        "delta": {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]},
        "usage": {
            "input_tokens": usage["input_tokens"],
            "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
            "cache_read_input_tokens": usage["cache_read_input_tokens"],
            "output_tokens": usage["output_tokens"],
        },
    }
    events.append((_sse("message_delta", final), False))
    events.append((_sse("message_stop", {"type": "message_stop"}), False))
    return events


def _fixed(body: dict[str, Any], stream: bool) -> bytes:
    reply = Reply([], words("Hello from the mock provider."), None, "end")
    message = _message(body["model"], reply, InputUsage(total=10))
    if stream:
        return b"".join(data for data, _ in _events(message, reply))
    return orjson.dumps(message)


def _invalid(ex: Exchange, *, needs_max_tokens: bool) -> web.Response | None:
    if denied := _unauthorized(ex):
        return denied
    body = ex.body
    if not isinstance(body, dict):
        return error(400, "the request body must be a JSON object")
    if not isinstance(body.get("model"), str) or not body["model"]:
        return error(400, "model: Field required")
    if not isinstance(body.get("messages"), list):
        return error(400, "messages: Field required")
    if not isinstance(body.get("tools", []), list):
        return error(400, "tools: Input should be a valid list")
    max_tokens = body.get("max_tokens")
    if needs_max_tokens and (not isinstance(max_tokens, int) or max_tokens < 1):
        return error(400, "max_tokens: Field required (an integer >= 1)")
    if needs_max_tokens and (problem := _unanswerable(body)):
        return error(400, problem)
    return None


def _unauthorized(ex: Exchange) -> web.Response | None:
    headers = ex.request.headers
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if headers.get("x-api-key") or (scheme.lower() == "bearer" and token.strip()):
        return None
    return error(401, "x-api-key header is required")


def _content_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text_of(content: Any) -> str:
    texts = [b.get("text") for b in _content_blocks(content) if b.get("type") == "text"]
    return "\n".join(t for t in texts if isinstance(t, str))


def _sse(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _headers() -> dict[str, str]:
    return {"request-id": f"req_{secrets.token_hex(12)}"}
