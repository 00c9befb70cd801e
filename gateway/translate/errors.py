"""Upstream error bodies in the caller's shape, status kept.

Anthropic errors: https://docs.anthropic.com/en/api/errors
OpenAI errors:    https://platform.openai.com/docs/guides/error-codes
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.shapes import SHAPES, ErrorInfo, Shape


def error_body(content: bytes, status: int, shape: Shape) -> bytes:
    """The provider's error `content` re-rendered for a caller of `shape`."""
    message, param = _message_of(content, status)
    return SHAPES[shape].error_body(ErrorInfo(status, message, param, relayed=True))


def stream_error_data(payload: dict[str, Any], shape: Shape) -> bytes:
    """An error event found inside an upstream stream, as the caller's SSE error event."""
    error = payload.get("error") if isinstance(payload.get("error"), dict) else {}
    message = str(error.get("message") or "The provider's stream reported an error.")
    return SHAPES[shape].stream_error(message)


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
