"""OpenAI Chat Completions (https://platform.openai.com/docs/api-reference/chat),
also used for OpenAI-compatible servers (vLLM, Ollama, OpenRouter, ...) at their
own base URL.

Quirks this adapter exists for:
- `usage.prompt_tokens` already INCLUDES `prompt_tokens_details.cached_tokens`
  (and `cache_write_tokens` where a server reports it), so it maps straight to
  Usage.input_tokens; `completion_tokens` already includes
  `completion_tokens_details.reasoning_tokens`.
- Streams carry usage only when the request sets `stream_options.include_usage`:
  one extra chunk before `data: [DONE]` whose `choices` is `[]` and whose `usage`
  is the whole call's; every other chunk then carries `"usage": null`.

Asking for stream usage, and dropping the usage-only chunk for clients that did not
ask, belong to the shape: gateway/shapes/openai_chat.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.providers.base import (
    UpstreamRequest,
    Usage,
    forwarded_headers,
    join_url,
    load_json,
    token_count,
)
from gateway.shapes.base import Shape
from gateway.shapes.openai_chat import USAGE_OBJECT
from gateway.sse import SSEEvent

# Text-bearing delta fields: content and refusal are OpenAI's; reasoning_content
# (vLLM, DeepSeek) and reasoning (OpenRouter) come from compatible servers.
_TEXT_FIELDS = ("content", "reasoning_content", "reasoning", "refusal")


class OpenAI:
    name = "openai"
    shape = Shape.OPENAI

    def generate_path(self, model: str, *, stream: bool) -> str:
        return "/v1/chat/completions"

    def build_request(
        self,
        *,
        path: str,
        body: bytes,
        client_headers: Mapping[str, str],
        api_key: str,
        base_url: str,
        method: str = "POST",
    ) -> UpstreamRequest:
        headers = forwarded_headers(client_headers, prefixes=("openai-",))
        if body:
            headers.setdefault("content-type", "application/json")
        headers["authorization"] = f"Bearer {api_key}"
        return UpstreamRequest(method, join_url(base_url, path), headers, body)

    def usage_from_body(self, body: Mapping[str, Any]) -> Usage:
        usage = body.get("usage")
        return _usage(usage) if isinstance(usage, Mapping) else Usage()

    def usage_from_event(self, event: SSEEvent, so_far: Usage) -> Usage:
        # With include_usage every chunk carries `"usage": null`: decode only the
        # one(s) with a usage object.
        if not USAGE_OBJECT.search(event.data):
            return so_far
        payload = load_json(event.data)
        usage = payload.get("usage") if isinstance(payload, dict) else None
        # The usage chunk reports the whole call, so it replaces rather than adds;
        # servers that send running usage on every chunk are cumulative too.
        return _usage(usage) if isinstance(usage, dict) else so_far

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


def _usage(usage: Mapping[str, Any]) -> Usage:
    prompt_details = usage.get("prompt_tokens_details")
    if not isinstance(prompt_details, Mapping):
        prompt_details = {}
    completion_details = usage.get("completion_tokens_details")
    if not isinstance(completion_details, Mapping):
        completion_details = {}
    return Usage(
        input_tokens=token_count(usage.get("prompt_tokens")),
        output_tokens=token_count(usage.get("completion_tokens")),
        cache_read_tokens=token_count(prompt_details.get("cached_tokens")),
        cache_write_tokens=token_count(prompt_details.get("cache_write_tokens")),
        reasoning_tokens=token_count(completion_details.get("reasoning_tokens")),
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
