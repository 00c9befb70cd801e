"""The cross-shape path: a client of one shape calling a model served in another.

`proxy.forward()` asks here for the call's `Exchange` only when the provider does not
serve the caller's shape (`Call.upstream_shape`), so the same-shape hot path carries
none of this. The body is translated (`gateway.translate`) for the upstream's own
endpoint, with the way back for the answer, its errors and its stream; proxy.py sends
and records the call exactly as a same-shape one: the real upstream model, usage read
by the upstream's wire shape, `inbound_shape` the caller's. Nothing here does I/O.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import orjson

from gateway.calls import Call
from gateway.errors import GatewayError
from gateway.exchange import Exchange, cannot_encode, encode
from gateway.shapes import Shape
from gateway.translate import requests as translate_requests
from gateway.translate import responses as translate_responses
from gateway.translate.errors import error_body
from gateway.translate.streams import ToAnthropicEvents, ToOpenAIChunks

Translator = ToAnthropicEvents | ToOpenAIChunks


def to_anthropic_events(body: dict[str, Any], model: str) -> Translator:
    return ToAnthropicEvents(model=model)


def to_openai_chunks(body: dict[str, Any], model: str) -> Translator:
    options = body.get("stream_options")
    asked = isinstance(options, dict) and options.get("include_usage") is True
    return ToOpenAIChunks(model=model, created=int(time.time()), include_usage=asked)


def to_completion(answer: dict[str, Any]) -> dict[str, Any]:
    return translate_responses.message_to_completion(answer, created=int(time.time()))


@dataclass(frozen=True, slots=True)
class Crossing:
    """How a caller of one shape is served by an upstream of the other."""

    request: Callable[[dict[str, Any]], dict[str, Any]]  # caller's body -> upstream's
    answer: Callable[[dict[str, Any]], dict[str, Any]]  # upstream's answer -> caller's
    stream: Callable[[dict[str, Any], str], Translator]  # (caller's body, model) -> events


# By the caller's shape.
CROSSINGS = {
    Shape.ANTHROPIC: Crossing(
        translate_requests.to_openai, translate_responses.completion_to_message, to_anthropic_events
    ),
    Shape.OPENAI: Crossing(translate_requests.to_anthropic, to_completion, to_openai_chunks),
}


def translated(body: dict[str, Any], call: Call) -> Exchange:
    """The call in the upstream's shape, and the way back; `body` is the caller's parsed body."""
    route, crossing = call.route, CROSSINGS[call.inbound_shape]
    try:
        sent = crossing.request(body)
    except orjson.JSONEncodeError as exc:  # a tool call's input, nested too deeply
        raise cannot_encode(exc) from None
    sent["model"] = route.model
    return Exchange(
        path=route.upstream.adapter.generate_path(
            route.model, call.upstream_shape, stream=call.stream
        ),
        body=encode(sent),
        sent=sent,
        events=partial(crossing.stream, body, route.model),
        translation=TranslatedBody(call.inbound_shape, crossing),
    )


@dataclass(frozen=True, slots=True)
class TranslatedBody:
    """A non-streamed answer, or the provider's error, in the caller's shape."""

    shape: Shape
    crossing: Crossing

    def answer(self, content: bytes, call: Call) -> bytes:
        try:
            answer = orjson.loads(content)
        except orjson.JSONDecodeError:
            raise GatewayError(502, "The provider's answer was not JSON.") from None
        if not isinstance(answer, dict):
            raise GatewayError(502, "The provider's answer was not a JSON object.")
        return orjson.dumps(self.crossing.answer(answer))

    def error(self, content: bytes, status: int) -> bytes:
        return error_body(content, status, self.shape)
