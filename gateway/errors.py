"""Gateway errors, raised anywhere on the hot path and rendered once, in the caller's
shape (each shape's envelope lives in gateway/shapes/)."""

from __future__ import annotations

from django.http import HttpResponse

# Metis' error classes for the statuses it answers itself (named as Anthropic names them).
ERROR_CLASSES = {
    400: "INVALID_REQUEST_ERROR",
    401: "AUTHENTICATION_ERROR",
    403: "PERMISSION_ERROR",
    404: "NOT_FOUND_ERROR",
    405: "INVALID_REQUEST_ERROR",
    408: "INVALID_REQUEST_ERROR",
    413: "REQUEST_TOO_LARGE",
    415: "INVALID_REQUEST_ERROR",
    429: "RATE_LIMIT_ERROR",
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
        self.error_class = error_class or ERROR_CLASSES.get(status, "API_ERROR")
        self.headers = headers or {}

    def response(self, body: bytes) -> HttpResponse:
        """The error's response, `body` its envelope in the caller's shape (gateway.shapes)."""
        response = HttpResponse(body, status=self.status, content_type="application/json")
        for name, value in self.headers.items():
            response[name] = value
        if self.final or self.status in (401, 403):
            # The anthropic and openai SDKs and Claude Code honour it; without it they retry
            # an auth failure or a spent budget for minutes (Claude Code: 10 times, 150 s).
            response["x-should-retry"] = "false"
        return response


def bad_request(message: str, *, param: str | None = None) -> GatewayError:
    return GatewayError(400, message, param=param, error_class="INVALID_REQUEST")
