"""Anthropic Messages (https://docs.anthropic.com/en/api/messages), as clients speak it.

Errors: https://docs.anthropic.com/en/api/errors. Streams carry usage on their own
(message_start, message_delta), so nothing is asked for or dropped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from django.http import HttpRequest

from gateway.errors import bad_request
from gateway.shapes.base import ErrorInfo, Shape, read_body
from gateway.sse import SSEEvent

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
