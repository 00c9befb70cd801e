"""Gateway errors, raised anywhere on the hot path and rendered once, in the caller's shape.

Anthropic: {"type": "error", "error": {"type": ..., "message": ...}}
OpenAI:    {"error": {"message": ..., "type": ..., "param": ..., "code": ...}}
"""

from __future__ import annotations

from enum import StrEnum

import orjson
from django.http import HttpResponse


class Shape(StrEnum):
    ANTHROPIC = "anthropic"
    OPENAI = "openai"


# status -> (Anthropic error type, OpenAI error type, OpenAI code)
ERROR_TYPES: dict[int, tuple[str, str, str | None]] = {
    400: ("invalid_request_error", "invalid_request_error", None),
    401: ("authentication_error", "invalid_request_error", "invalid_api_key"),
    403: ("permission_error", "permission_error", "model_not_allowed"),
    404: ("not_found_error", "invalid_request_error", "model_not_found"),
    405: ("invalid_request_error", "invalid_request_error", "method_not_allowed"),
    408: ("invalid_request_error", "invalid_request_error", "request_timeout"),
    413: ("request_too_large", "invalid_request_error", "request_too_large"),
    415: ("invalid_request_error", "invalid_request_error", "unsupported_media_type"),
    429: ("rate_limit_error", "rate_limit_exceeded", "rate_limit_exceeded"),
    500: ("api_error", "server_error", None),
    502: ("api_error", "api_error", "upstream_error"),
    503: ("api_error", "api_error", "service_unavailable"),
    504: ("api_error", "api_error", "upstream_timeout"),
}


class GatewayError(Exception):
    """An error the gateway answers itself (not one relayed from the provider)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        error_class: str | None = None,
        headers: dict[str, str] | None = None,
        code: str | None = None,
        openai_type: str | None = None,
        final: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code  # OpenAI's error code, when the status's usual one would mislead
        self.openai_type = openai_type  # likewise OpenAI's error type
        self.final = final  # retrying cannot help: clients are told not to
        self.error_class = error_class or ERROR_TYPES.get(status, ("api_error",))[0].upper()
        self.headers = headers or {}

    def render(self, shape: Shape) -> HttpResponse:
        anthropic_type, openai_type, code = ERROR_TYPES.get(status := self.status, ERROR_TYPES[502])
        if shape is Shape.ANTHROPIC:
            body = {"type": "error", "error": {"type": anthropic_type, "message": self.message}}
        else:
            error = {"message": self.message, "type": self.openai_type or openai_type}
            error["param"] = self.param
            body = {"error": {**error, "code": self.code or code}}
        response = HttpResponse(orjson.dumps(body), status=status, content_type="application/json")
        for name, value in self.headers.items():
            response[name] = value
        if self.final or status in (401, 403):
            # The anthropic and openai SDKs and Claude Code honour it; without it they retry
            # an auth failure or a spent budget for minutes (Claude Code: 10 times, 150 s).
            response["x-should-retry"] = "false"
        return response


def bad_request(message: str, *, param: str | None = None) -> GatewayError:
    return GatewayError(400, message, param=param, error_class="INVALID_REQUEST")
