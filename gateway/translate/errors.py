"""Upstream error bodies in the caller's shape, status kept.

Anthropic errors: https://docs.anthropic.com/en/api/errors
OpenAI errors:    https://platform.openai.com/docs/guides/error-codes
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.errors import ERROR_TYPES, Shape

_SERVER_ERROR = ("api_error", "server_error", None)
_OVERLOADED = ("overloaded_error", "server_error", None)


def error_body(content: bytes, status: int, shape: Shape) -> bytes:
    """The provider's error `content` re-rendered for a caller of `shape`."""
    message, param = _message_of(content, status)
    default = _OVERLOADED if status == 529 else _SERVER_ERROR
    anthropic_type, openai_type, code = ERROR_TYPES.get(status, default)
    if status >= 500 and status not in ERROR_TYPES:
        anthropic_type, openai_type, code = default
    if shape is Shape.ANTHROPIC:
        body: dict[str, Any] = {"type": "error", "error": {"type": anthropic_type}}
        body["error"]["message"] = message
    else:
        error = {"message": message, "type": openai_type, "param": param, "code": code}
        body = {"error": error}
    return orjson.dumps(body)


def stream_error_data(payload: dict[str, Any], shape: Shape) -> bytes:
    """An error event found inside an upstream stream, as the caller's SSE error event."""
    error = payload.get("error") if isinstance(payload.get("error"), dict) else {}
    message = str(error.get("message") or "The provider's stream reported an error.")
    if shape is Shape.ANTHROPIC:
        body = {"type": "error", "error": {"type": "api_error", "message": message}}
        return b"event: error\ndata: " + orjson.dumps(body) + b"\n\n"
    body = {"error": {"message": message, "type": "api_error", "code": "upstream_error"}}
    return b"data: " + orjson.dumps(body) + b"\n\n"


def _message_of(content: bytes, status: int) -> tuple[str, str | None]:
    try:
        payload = orjson.loads(content)
    except orjson.JSONDecodeError:
        payload = None
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        param = error.get("param")
        return error["message"], param if isinstance(param, str) else None
    text = content.decode("utf-8", "replace").strip()[:500]
    return text or f"The provider answered with HTTP {status}.", None
