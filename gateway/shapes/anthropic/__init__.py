"""Anthropic Messages (https://docs.anthropic.com/en/api/messages), as clients speak it.

Errors: https://docs.anthropic.com/en/api/errors. Streams carry usage on their own
(message_start, message_delta), so nothing is asked for or dropped.

Usage quirks:
- `usage.input_tokens` EXCLUDES cache tokens: total input is input_tokens +
  cache_read_input_tokens + cache_creation_input_tokens.
- `usage.cache_creation` splits cache writes by TTL (ephemeral_5m_input_tokens,
  ephemeral_1h_input_tokens; 1h writes cost more). Older responses omit the
  object: all writes are then 5-minute writes.
- Streams (https://docs.anthropic.com/en/docs/build-with-claude/streaming):
  `message_start.message.usage` carries input and cache counts;
  `message_delta.usage` is CUMULATIVE, so the last one wins and nothing is summed.
  Newer APIs repeat input/cache counts in message_delta (they grow with server
  tools); they replace the start values when present and non-null.
- Thinking tokens are billed inside output_tokens; the API breaks them out only in
  `output_tokens_details.thinking_tokens`, which becomes `reasoning_tokens`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import orjson
from django.http import HttpRequest

from analytics.usage import Usage
from gateway.errors import bad_request
from gateway.shapes import internal
from gateway.shapes.anthropic import answers, requests
from gateway.shapes.anthropic.usage import read_usage
from gateway.shapes.base import ErrorInfo, Shape, read_body
from gateway.sse import SSEEvent, load_json

if TYPE_CHECKING:
    from gateway.routing import ModelEntry

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "invalid_request_error",
    413: "request_too_large",
    415: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "api_error",
    504: "api_error",
}

_USAGE_EVENTS = frozenset({"message_start", "message_delta"})
# Delta fields that carry generated text, by delta type.
_TEXT_FIELDS = {
    "text_delta": "text",
    "thinking_delta": "thinking",
    "input_json_delta": "partial_json",
}

# Metrion's direct-HTTP path has no /v1: the same endpoints, under the paths they mean.
PATH_ALIASES = {"/messages": "/v1/messages", "/messages/count_tokens": "/v1/messages/count_tokens"}


class AnthropicMessages:
    shape = Shape.ANTHROPIC
    paths = ("/v1/messages", "/v1/messages/count_tokens")
    path_prefix = "/v1/messages"
    sdk_header = "anthropic-version"

    def parse(self, request: HttpRequest) -> dict[str, Any]:
        body = read_body(request, self.shape)
        if body.get("max_tokens") is None:
            raise bad_request("max_tokens is required", param="max_tokens")
        return body

    def error_body(self, error: ErrorInfo) -> bytes:
        status = error.status
        kind = ERROR_TYPES.get(status) or ("overloaded_error" if status == 529 else "api_error")
        return orjson.dumps({"type": "error", "error": {"type": kind, "message": error.message}})

    def stream_error(self, message: str) -> bytes:
        error = {"type": "error", "error": {"type": "api_error", "message": message}}
        return b"event: error\ndata: " + orjson.dumps(error) + b"\n\n"

    def model_object(self, entry: ModelEntry) -> dict[str, Any]:
        return {
            "type": "model",
            "id": entry.id,
            "display_name": entry.id,
            "created_at": "2025-01-01T00:00:00Z",
        }

    def models_page(self, entries: list[ModelEntry]) -> dict[str, Any]:
        data = [self.model_object(e) for e in entries]
        return {
            "data": data,
            "has_more": False,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }

    def ask_stream_usage(self, body: dict[str, Any]) -> bool:
        return False

    def is_usage_only(self, event: SSEEvent) -> bool:
        return False

    def ends_stream(self, event: SSEEvent) -> bool:
        return event.event == "message_stop"

    def usage_from_body(self, body: Mapping[str, Any]) -> Usage:
        usage = body.get("usage")
        return read_usage(usage, Usage()) if isinstance(usage, Mapping) else Usage()

    def usage_from_event(self, event: SSEEvent, so_far: Usage) -> Usage:
        if event.event is not None and event.event not in _USAGE_EVENTS:
            return so_far
        if '"usage"' not in event.data:  # skip the JSON decode for the many text deltas
            return so_far
        payload = load_json(event.data)
        if not isinstance(payload, dict):
            return so_far
        kind = payload.get("type")
        if kind == "message_start":  # the first usage of the message: start from zero
            message = payload.get("message")
            usage = message.get("usage") if isinstance(message, dict) else None
            if not isinstance(usage, dict):
                return so_far
            # Its output_tokens is a placeholder (1); the real count comes cumulatively in
            # message_delta. Left at 0, a stream that ends before one is estimated from its text.
            return replace(read_usage(usage, Usage()), output_tokens=0)
        if kind == "message_delta":
            usage = payload.get("usage")
            return read_usage(usage, so_far) if isinstance(usage, dict) else so_far
        return so_far

    def text_from_event(self, event: SSEEvent) -> str:
        if event.event is not None and event.event != "content_block_delta":
            return ""
        payload = load_json(event.data)
        delta = payload.get("delta") if isinstance(payload, dict) else None
        if not isinstance(delta, dict) or not isinstance(kind := delta.get("type"), str):
            return ""  # garbage from upstream must not break the relay
        text = delta.get(_TEXT_FIELDS.get(kind, ""))
        return text if isinstance(text, str) else ""

    # ---- Translating: the internal form (requests.py, answers.py) ----
    to_internal = staticmethod(requests.to_internal)
    from_internal = staticmethod(requests.from_internal)
    response_to_internal = staticmethod(answers.response_to_internal)
    response_from_internal = staticmethod(answers.response_from_internal)
    stream_reader = answers.StreamReader

    def stream_writer(self, request: internal.Request) -> answers.StreamWriter:
        return answers.StreamWriter(request, self.stream_error)
