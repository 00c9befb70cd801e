"""The OpenAI Responses API (https://platform.openai.com/docs/api-reference/responses), as
clients speak it (the openai SDKs' `responses.create`, Codex CLI).

Usage: `input_tokens` already includes `input_tokens_details.cached_tokens`, and
`output_tokens` includes `output_tokens_details.reasoning_tokens`. Streams always carry
it, in the terminal event (`response.completed`, `response.incomplete` or
`response.failed`, each with the whole response), so nothing is asked for or dropped.

Errors share Chat Completions' envelope; a failure inside a stream is an `error` event
(https://platform.openai.com/docs/api-reference/responses-streaming/error).

Answers a Claude model gave through translation are never stored (Metis keeps no
conversation state), so their ids carry `TRANSLATED_ID_PREFIX`: the stored-response
paths and `previous_response_id` can then say why they cannot help, instead of passing
an id OpenAI never issued to OpenAI. Translation lives in requests.py, answers.py and
streams.py of this package.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
from django.http import HttpRequest

from analytics.usage import Usage
from gateway.errors import bad_request
from gateway.shapes.base import ErrorInfo, Shape, read_object
from gateway.shapes.openai_chat import OpenAIChat
from gateway.shapes.openai_responses import answers, requests, streams
from gateway.shapes.openai_responses.answers import TRANSLATED_ID_PREFIX, read_usage
from gateway.sse import SSEEvent, load_json

if TYPE_CHECKING:
    from gateway.routing import ModelEntry

__all__ = ["TRANSLATED_ID_PREFIX", "OpenAIResponses", "read_usage"]
# The events that carry the whole response, usage included; the stream ends with one.
TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})
# Events whose `delta` is generated text: visible, refused, reasoning, or tool arguments.
TEXT_DELTAS = frozenset(
    {
        "response.output_text.delta",
        "response.refusal.delta",
        "response.reasoning_text.delta",
        "response.reasoning_summary_text.delta",
        "response.function_call_arguments.delta",
        "response.custom_tool_call_input.delta",
    }
)
_CHAT = OpenAIChat()  # the same error envelope and model list as Chat Completions


class OpenAIResponses:
    shape = Shape.RESPONSES
    paths = ("/v1/responses",)
    path_prefix = "/v1/responses"
    sdk_header = None

    def parse(self, request: HttpRequest) -> dict[str, Any]:
        body = read_object(request, self.shape)
        value = body.get("input")
        if value is None:
            if not any(body.get(k) for k in ("previous_response_id", "prompt", "conversation")):
                raise bad_request("input is required: a string or a list of items", param="input")
        elif not isinstance(value, str | list):
            raise bad_request("input must be a string or a list of items", param="input")
        limit = body.get("max_output_tokens")
        if limit is not None and (type(limit) is not int or limit < 1):
            raise bad_request(
                "max_output_tokens must be a positive integer", param="max_output_tokens"
            )
        return body

    def error_body(self, error: ErrorInfo) -> bytes:
        return _CHAT.error_body(error)

    def stream_error(self, message: str) -> bytes:
        error = {"type": "error", "sequence_number": 0, "code": "upstream_error"}
        error |= {"message": message, "param": None}
        return b"event: error\ndata: " + orjson.dumps(error) + b"\n\n"

    def model_object(self, entry: ModelEntry) -> dict[str, Any]:
        return _CHAT.model_object(entry)

    def models_page(self, entries: list[ModelEntry]) -> dict[str, Any]:
        return _CHAT.models_page(entries)

    def ask_stream_usage(self, body: dict[str, Any]) -> bool:
        return False

    def is_usage_only(self, event: SSEEvent) -> bool:
        return False

    def ends_stream(self, event: SSEEvent) -> bool:
        return event.event in TERMINAL_EVENTS

    def usage_from_body(self, body: Mapping[str, Any]) -> Usage:
        usage = body.get("usage")
        return read_usage(usage) if isinstance(usage, Mapping) else Usage()

    def usage_from_event(self, event: SSEEvent, so_far: Usage) -> Usage:
        # Only the terminal event has usage (`response.created` carries `"usage": null`);
        # the text deltas, the many events, are never decoded here.
        if event.event is not None and event.event not in TERMINAL_EVENTS:
            return so_far
        if '"usage"' not in event.data:
            return so_far
        payload = load_json(event.data)
        response = payload.get("response") if isinstance(payload, dict) else None
        usage = response.get("usage") if isinstance(response, dict) else None
        return read_usage(usage) if isinstance(usage, dict) else so_far

    def text_from_event(self, event: SSEEvent) -> str:
        if event.event is not None and event.event not in TEXT_DELTAS:
            return ""
        if '"delta"' not in event.data:
            return ""
        payload = load_json(event.data)
        kind = payload.get("type") if isinstance(payload, dict) else None
        if not isinstance(kind, str) or kind not in TEXT_DELTAS:
            return ""
        delta = payload.get("delta")
        return delta if isinstance(delta, str) else ""

    # ---- Translating: the internal form (requests.py, answers.py, streams.py) ----
    to_internal = staticmethod(requests.to_internal)
    from_internal = staticmethod(requests.from_internal)
    response_to_internal = staticmethod(answers.to_internal)
    response_from_internal = staticmethod(answers.from_internal)
    stream_reader = streams.Reader
    stream_writer = streams.Writer
