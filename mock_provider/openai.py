"""The OpenAI Chat Completions API, formatted as https://platform.openai.com/docs/api-reference/chat
does.

Quirks reproduced on purpose, because the gateway must handle them:
- `prompt_tokens` already includes `cached_tokens`; `completion_tokens` includes
  `reasoning_tokens` (given by o-series and gpt-5 models, and charged against
  `max_completion_tokens`, so a small limit can leave no visible text).
- Prompt caching is automatic: from 1024 prompt tokens, a prompt that extends one seen before
  (same tools, up to three more messages) reports cached tokens in 128-token steps.
- Streams are `data:` lines only, end with `data: [DONE]`, and carry usage only when
  `stream_options.include_usage` is true: then every chunk has `"usage": null` and one extra
  chunk with `choices: []` carries it.
- An Anthropic-style 529 is answered as OpenAI does when overloaded: 503 with a server_error.
- `response_format` json_schema / json_object answers with content that is JSON matching the
  schema (any object for json_object). `reasoning_effort` is refused by models that do not
  reason (gpt-4*), as OpenAI refuses it; reasoning models spend more tokens at higher effort.
"""

from __future__ import annotations

import hashlib
import secrets
import time
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

FINISH_REASONS = {"end": "stop", "stop_sequence": "stop", "max_tokens": "length"}
MODELS = ["gpt-5", "gpt-5-mini", "gpt-4.1", "gpt-4o-mini", "o4-mini"]
FINGERPRINT = "fp_m0ck0001"
CREATED = 1735689600  # model listing timestamps: fixed, like the real ones
REASONING_TOKENS = 16  # at the default effort, medium
EFFORT_TOKENS = {"none": 0, "minimal": 4, "low": 8, "medium": 16, "high": 32, "xhigh": 48}
CACHE_MIN_TOKENS, CACHE_STEP = 1024, 128


def error(status: int, message: str) -> web.Response:
    if status == 529:
        status, message = 503, "The engine is currently overloaded, please try again later."
    kind = "server_error" if status >= 500 else "invalid_request_error"
    code = {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded"}
    if status == 429:
        kind = "requests"
    body = {"error": {"message": message, "type": kind, "param": None, "code": code.get(status)}}
    headers = _headers() | ({"retry-after": "0"} if status == 429 else {})
    return web.json_response(body=orjson.dumps(body), status=status, headers=headers)


@recorded
async def chat_completions(ex: Exchange) -> web.StreamResponse:
    if problem := _invalid(ex):
        return problem
    body = ex.body
    prompt, reasoning = prompt_from(body)
    if failed := await apply_fault(ex, prompt.last_user_text, error):
        return failed
    stream = body.get("stream") is True
    options = body.get("stream_options")
    with_usage = stream and isinstance(options, dict) and options.get("include_usage") is True
    if ex.state.always_fixed or ex.request.headers.get("x-mock-fixed") == "1":
        key = ("openai", body["model"], stream, with_usage)
        fixed = ex.state.fixed_body(key, lambda: _fixed(body["model"], stream, with_usage))
        if stream:
            return await send_events(ex, [(fixed, False)], _headers())
        return await send_body(ex, fixed, _headers())
    reply = compose(prompt)
    prompt_tokens = max(1, len(orjson.dumps([body.get("tools"), body["messages"]])) // 4)
    cached = _cached_tokens(body, prompt_tokens, ex.state.cache)
    completion = _completion(body["model"], reply, _usage(prompt_tokens, cached, reply, reasoning))
    if ex.fault.zero_output:
        completion["usage"] |= {"completion_tokens": 0, "total_tokens": prompt_tokens}
    ex.state.ledger.add(
        "completions", "openai", api_key_of(ex.request), body["model"],
        uncached_input=prompt_tokens - cached, cache_read=cached,
        output=completion["usage"]["completion_tokens"],
    )  # fmt: skip
    if stream:
        return await send_events(ex, _events(completion, reply, with_usage), _headers())
    return await send_body(ex, orjson.dumps(completion), _headers())


@recorded
async def models(ex: Exchange) -> web.StreamResponse:
    if denied := _unauthorized(ex):
        return denied
    data = [{"id": m, "object": "model", "created": CREATED, "owned_by": "openai"} for m in MODELS]
    return await send_body(ex, orjson.dumps({"object": "list", "data": data}), _headers())


def prompt_from(body: dict[str, Any]) -> tuple[Prompt, int]:
    """The neutral prompt, and the reasoning tokens this model spends before answering."""
    messages = [m for m in body["messages"] if isinstance(m, dict)]
    last_user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    last = messages[-1] if messages else {}
    tools = []
    for tool in body.get("tools") or []:
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            tools.append((function["name"], function.get("parameters") or {}))
    choice, forced = body.get("tool_choice"), None
    if choice == "none":
        tools = []
    elif choice == "required":
        forced = ANY_TOOL
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        forced = choice["function"].get("name")
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop if isinstance(stop, list) else []
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    limit = limit if isinstance(limit, int) else None
    model = body["model"]
    reasoning = REASONING_TOKENS if model.startswith(("o", "gpt-5")) else 0
    if reasoning and isinstance(effort := body.get("reasoning_effort"), str):
        reasoning = EFFORT_TOKENS.get(effort, REASONING_TOKENS)
    if limit is not None:
        reasoning = min(reasoning, limit)
    prompt = Prompt(
        model=model,
        last_user_text=_text_of(last_user.get("content")),
        tool_result=_text_of(last.get("content")) if last.get("role") == "tool" else None,
        tools=tools,
        forced_tool=forced,
        max_tokens=None if limit is None else limit - reasoning,
        stop_sequences=[s for s in stops if isinstance(s, str)],
        answer_schema=_answer_schema(body.get("response_format")),
    )
    return prompt, reasoning


def _answer_schema(response_format: Any) -> dict[str, Any] | None:
    if not isinstance(response_format, dict):
        return None
    if response_format.get("type") == "json_object":
        return {}
    spec = response_format.get("json_schema")
    if response_format.get("type") == "json_schema" and isinstance(spec, dict):
        schema = spec.get("schema")
        return schema if isinstance(schema, dict) else {}
    return None


def _cached_tokens(body: dict[str, Any], prompt_tokens: int, cache: PromptCache) -> int:
    if prompt_tokens < CACHE_MIN_TOKENS:  # below OpenAI's threshold; also spares benchmarks
        return 0
    messages, head = body["messages"], [body["model"], body.get("tools")]
    keys, hit = [], 0
    # A conversation grows by an assistant turn plus a user or tool turn, so look a few back.
    for end in range(len(messages), max(len(messages) - 4, 0), -1):
        encoded = orjson.dumps([*head, messages[:end]])
        keys.append(hashlib.blake2b(encoded, digest_size=16).digest())
        if keys[-1] in cache:
            hit = len(encoded) // 4
            break
    cache.add(keys[0])
    cached = min(hit, prompt_tokens)
    return cached // CACHE_STEP * CACHE_STEP if cached >= CACHE_MIN_TOKENS else 0


def _usage(prompt_tokens: int, cached: int, reply: Reply, reasoning: int) -> dict[str, Any]:
    completion = reply.output_tokens + reasoning
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _completion(model: str, reply: Reply, usage: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": "".join(reply.text)}
    message |= {"refusal": None, "annotations": []}
    if reply.tool:
        message["content"] = None
        call = {"name": reply.tool.name, "arguments": "".join(reply.tool.pieces)}
        tool_call = {"id": f"call_{secrets.token_hex(12)}", "type": "function", "function": call}
        message["tool_calls"] = [tool_call]
    choice = {"index": 0, "message": message, "logprobs": None}
    choice["finish_reason"] = "tool_calls" if reply.tool else FINISH_REASONS[reply.stop]
    return {
        "id": f"chatcmpl-{secrets.token_hex(12)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": usage,
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }


def _events(completion: dict[str, Any], reply: Reply, with_usage: bool) -> list[Event]:
    base = {key: completion[key] for key in ("id", "created", "model", "service_tier")}
    base |= {"object": "chat.completion.chunk", "system_fingerprint": FINGERPRINT}
    if with_usage:
        base["usage"] = None

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return b"data: " + orjson.dumps({**base, "choices": [choice]}) + b"\n\n"

    message = completion["choices"][0]["message"]
    deltas: list[dict[str, Any]]
    if reply.tool:
        call = message["tool_calls"][0]
        opening = {**call, "index": 0, "function": {"name": reply.tool.name, "arguments": ""}}
        first: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [opening]}
        first["refusal"] = None
        deltas = [
            {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
            for piece in reply.tool.pieces
        ]
    else:
        first = {"role": "assistant", "content": "", "refusal": None}
        deltas = [{"content": piece} for piece in reply.text]
    finish = completion["choices"][0]["finish_reason"]
    events = [(chunk(first), False), *((chunk(delta), True) for delta in deltas)]
    events.append((chunk({}, finish), False))
    if with_usage:
        last = {**base, "choices": [], "usage": completion["usage"]}
        events.append((b"data: " + orjson.dumps(last) + b"\n\n", False))
    events.append((b"data: [DONE]\n\n", False))
    return events


def _fixed(model: str, stream: bool, with_usage: bool) -> bytes:
    reply = Reply([], words("Hello from the mock provider."), None, "end")
    completion = _completion(model, reply, _usage(10, 0, reply, 0))
    if stream:
        return b"".join(data for data, _ in _events(completion, reply, with_usage))
    return orjson.dumps(completion)


def refused(ex: Exchange) -> web.Response | None:
    """What every OpenAI endpoint checks first: a key, a JSON object, and a model."""
    if denied := _unauthorized(ex):
        return denied
    if not isinstance(ex.body, dict):
        return error(400, "We could not parse the JSON body of your request.")
    if not isinstance(ex.body.get("model"), str) or not ex.body["model"]:
        return error(400, "you must provide a model parameter")
    return None


def _invalid(ex: Exchange) -> web.Response | None:
    if problem := refused(ex):
        return problem
    body = ex.body
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        return error(400, "'messages' must be a non-empty array")
    if not isinstance(body.get("tools", []), list):
        return error(400, "'tools' must be an array")
    effort = body.get("reasoning_effort")
    if effort is not None and (not isinstance(effort, str) or effort not in EFFORT_TOKENS):
        return error(400, f"Invalid value for 'reasoning_effort': {effort!r}.")
    if effort is not None and not body["model"].startswith(("o", "gpt-5")):
        return error(
            400, "Unsupported parameter: 'reasoning_effort' is not supported with this model."
        )
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            return error(400, "Missing required parameter: 'response_format.json_schema.name'.")
    return None


def _unauthorized(ex: Exchange) -> web.Response | None:
    scheme, _, token = ex.request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return None
    return error(401, "You didn't provide an API key (Authorization: Bearer YOUR_KEY).")


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else []
    texts = [p.get("text") for p in parts if isinstance(p, dict) and p.get("type") == "text"]
    return "\n".join(t for t in texts if isinstance(t, str))


def _headers() -> dict[str, str]:
    return {"x-request-id": f"req_{secrets.token_hex(16)}"}
