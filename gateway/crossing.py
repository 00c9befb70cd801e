"""The cross-shape path: a client of one shape calling a model served in the other.

`forward()` hands a call here only when `route.upstream.shape` differs from the
caller's, so the same-shape hot path carries none of this. The body is translated
(`gateway.translate`), sent to the upstream shape's own endpoint, and the answer
translated back, while the call is recorded exactly as proxy.py records it: the
real upstream model, usage read by the upstream's adapter, `inbound_shape` the
caller's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from django.http import HttpRequest, HttpResponse

from gateway import proxy
from gateway.calls import Call
from gateway.errors import GatewayError
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


async def forward_translated(
    request: HttpRequest, body: dict[str, Any], call: Call
) -> HttpResponse:
    """Serve `call` from an upstream of the other shape; `body` is the caller's parsed body."""
    route, crossing = call.route, CROSSINGS[call.inbound_shape]
    try:
        translated = crossing.request(body)
    except orjson.JSONEncodeError as exc:  # a tool call's input, nested too deeply
        raise proxy.cannot_encode(exc) from None
    translated["model"] = route.model
    upstream_request = route.upstream.adapter.build_request(
        path=route.upstream.adapter.generate_path,
        body=proxy.encode(translated),
        client_headers=request.headers,
        api_key=call.caller.provider_key or route.upstream.api_key,
        base_url=route.upstream.base_url,
    )
    response = await proxy.send(call, upstream_request, translated)
    if call.stream and response.status == 200 and proxy.is_event_stream(response):
        events = crossing.stream(body, route.model)
        return proxy.streaming_response(response, call, events)
    translation = TranslatedBody(call.inbound_shape, crossing)
    return await proxy.respond(response, call, translation=translation)


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
