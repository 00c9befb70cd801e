"""OpenAI Chat Completions (https://platform.openai.com/docs/api-reference/chat), as
clients speak it (OpenAI-compatible servers speak it too).

Errors: https://platform.openai.com/docs/guides/error-codes.

Streams carry usage only when the request sets `stream_options.include_usage`: one
extra chunk before `data: [DONE]` whose `choices` is `[]` and whose `usage` is the
whole call's; every other chunk then carries `"usage": null`. Metis needs usage to
price every call, so it asks on every streaming body (`ask_stream_usage`). When the
client did not ask itself, the relay drops the usage-only chunk (`is_usage_only`),
because clients that never asked for it may index `choices[0]` and fail on the empty
list; the `"usage": null` fields are relayed untouched (the SDKs model them as
optional). A client that asked gets the stream exactly as OpenAI sends it.

Usage: `usage.prompt_tokens` already INCLUDES `prompt_tokens_details.cached_tokens`
(and `cache_write_tokens` where a server reports it), so it maps straight to
Usage.input_tokens; `completion_tokens` already includes
`completion_tokens_details.reasoning_tokens`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
from django.http import HttpRequest

from analytics.usage import Usage
from gateway.shapes import internal
from gateway.shapes.base import ErrorInfo, Shape, read_body
from gateway.shapes.openai_chat import answers, requests
from gateway.shapes.openai_chat.answers import read_usage
from gateway.sse import SSEEvent, load_json

if TYPE_CHECKING:
    from gateway.routing import ModelEntry

USAGE_OBJECT = re.compile(r'"usage"\s*:\s*\{')
# Text-bearing delta fields: content and refusal are OpenAI's; reasoning_content
# (vLLM, DeepSeek) and reasoning (OpenRouter) come from compatible servers.
_TEXT_FIELDS = ("content", "reasoning_content", "reasoning", "refusal")

# status -> (error type, code)
ERROR_TYPES: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", "model_not_allowed"),
    404: ("invalid_request_error", "model_not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    408: ("invalid_request_error", "request_timeout"),
    413: ("invalid_request_error", "request_too_large"),
    415: ("invalid_request_error", "unsupported_media_type"),
    429: ("rate_limit_exceeded", "rate_limit_exceeded"),
    500: ("server_error", None),
    502: ("api_error", "upstream_error"),
    503: ("api_error", "service_unavailable"),
    504: ("api_error", "upstream_timeout"),
}
_RELAYED_DEFAULT = ("server_error", None)  # a provider's status we have no name for
_GATEWAY_DEFAULT = ERROR_TYPES[502]


class OpenAIChat:
    shape = Shape.OPENAI
    paths = ("/v1/chat/completions",)
    path_prefix = "/v1/chat/"
    sdk_header = None

    def parse(self, request: HttpRequest) -> dict[str, Any]:
        return read_body(request, self.shape)

    def error_body(self, error: ErrorInfo) -> bytes:
        default = _RELAYED_DEFAULT if error.relayed else _GATEWAY_DEFAULT
        known_type, known_code = ERROR_TYPES.get(error.status, default)
        body = {"message": error.message, "type": error.type or known_type, "param": error.param}
        return orjson.dumps({"error": {**body, "code": error.code or known_code}})

    def stream_error(self, message: str) -> bytes:
        error = {"error": {"message": message, "type": "api_error", "code": "upstream_error"}}
        return b"data: " + orjson.dumps(error) + b"\n\n"

    def model_object(self, entry: ModelEntry) -> dict[str, Any]:
        return {
            "id": entry.id,
            "object": "model",
            "created": 1735689600,
            "owned_by": entry.provider,
        }

    def models_page(self, entries: list[ModelEntry]) -> dict[str, Any]:
        return {"object": "list", "data": [self.model_object(e) for e in entries]}

    def ask_stream_usage(self, body: dict[str, Any]) -> bool:
        return not ensure_stream_usage(body)

    def is_usage_only(self, event: SSEEvent) -> bool:
        return is_usage_only_chunk(event)

    def ends_stream(self, event: SSEEvent) -> bool:
        return event.data.strip() == "[DONE]"

    def usage_from_body(self, body: Mapping[str, Any]) -> Usage:
        usage = body.get("usage")
        return read_usage(usage) if isinstance(usage, Mapping) else Usage()

    def usage_from_event(self, event: SSEEvent, so_far: Usage) -> Usage:
        # With include_usage every chunk carries `"usage": null`: decode only the
        # one(s) with a usage object.
        if not USAGE_OBJECT.search(event.data):
            return so_far
        payload = load_json(event.data)
        usage = payload.get("usage") if isinstance(payload, dict) else None
        # The usage chunk reports the whole call, so it replaces rather than adds;
        # servers that send running usage on every chunk are cumulative too.
        return read_usage(usage) if isinstance(usage, dict) else so_far

    def text_from_event(self, event: SSEEvent) -> str:
        if '"delta"' not in event.data:
            return ""
        payload = load_json(event.data)
        choices = payload.get("choices") if isinstance(payload, dict) else None
        if not isinstance(choices, list):
            return ""
        parts: list[str] = []
        for choice in choices:
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if isinstance(delta, dict):
                parts.extend(_delta_text(delta))
        return "".join(parts)

    # ---- Translating: the internal form (requests.py, answers.py) ----
    to_internal = staticmethod(requests.to_internal)
    from_internal = staticmethod(requests.from_internal)
    response_to_internal = staticmethod(answers.response_to_internal)
    response_from_internal = staticmethod(answers.response_from_internal)
    stream_reader = answers.StreamReader

    def stream_writer(self, request: internal.Request) -> answers.StreamWriter:
        return answers.StreamWriter(request, self.stream_error)


def ensure_stream_usage(body: dict[str, Any]) -> bool:
    """Ask a streaming request body for usage (in place); return whether the
    client had asked for it itself. Non-streaming bodies are left alone, since
    OpenAI rejects `stream_options` without `stream: true`."""
    options = body.get("stream_options")
    client_asked = isinstance(options, dict) and options.get("include_usage") is True
    if body.get("stream") is True:
        if isinstance(options, dict):
            options["include_usage"] = True
        else:
            body["stream_options"] = {"include_usage": True}
    return client_asked


def is_usage_only_chunk(event: SSEEvent) -> bool:
    """True for the final `choices: []` chunk that include_usage adds."""
    if not USAGE_OBJECT.search(event.data):
        return False
    try:
        payload = orjson.loads(event.data)
    except orjson.JSONDecodeError:
        return False
    return (
        isinstance(payload, dict)
        and isinstance(payload.get("usage"), dict)
        and not payload.get("choices")
    )


def _delta_text(delta: Mapping[str, Any]) -> list[str]:
    parts = [text for key in _TEXT_FIELDS if isinstance(text := delta.get(key), str)]
    tool_calls = delta.get("tool_calls")
    if isinstance(tool_calls, list):
        for call in tool_calls:
            function = call.get("function") if isinstance(call, dict) else None
            arguments = function.get("arguments") if isinstance(function, dict) else None
            if isinstance(arguments, str):
                parts.append(arguments)
    return parts
