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
from dataclasses import dataclass
from typing import Any

import orjson
from django.http import HttpRequest, HttpResponse

from gateway import proxy
from gateway.calls import Call
from gateway.errors import GatewayError, Shape
from gateway.translate import requests as translate_requests
from gateway.translate import responses as translate_responses
from gateway.translate.errors import error_body
from gateway.translate.streams import ToAnthropicEvents, ToOpenAIChunks

PATHS = {Shape.ANTHROPIC: "/v1/messages", Shape.OPENAI: "/v1/chat/completions"}
Translator = ToAnthropicEvents | ToOpenAIChunks


async def forward_translated(
    request: HttpRequest, body: dict[str, Any], call: Call
) -> HttpResponse:
    """Serve `call` from an upstream of the other shape; `body` is the caller's parsed body."""
    route, shape = call.route, call.inbound_shape
    try:
        translated = translate_body(body, shape)
    except orjson.JSONEncodeError as exc:  # a tool call's input, nested too deeply
        raise proxy.cannot_encode(exc) from None
    translated["model"] = route.model
    upstream_request = route.upstream.adapter.build_request(
        path=PATHS[route.upstream.shape],
        body=proxy.encode(translated),
        client_headers=request.headers,
        api_key=call.caller.provider_key or route.upstream.api_key,
        base_url=route.upstream.base_url,
    )
    response = await proxy.send(call, upstream_request, translated)
    if call.stream and response.status == 200 and proxy.is_event_stream(response):
        return proxy.streaming_response(response, call, stream_translator(body, call))
    return await proxy.respond(response, call, translation=TranslatedBody(call.inbound_shape))


def translate_body(body: dict[str, Any], shape: Shape) -> dict[str, Any]:
    if shape is Shape.ANTHROPIC:
        return translate_requests.to_openai(body)
    return translate_requests.to_anthropic(body)


def stream_translator(body: dict[str, Any], call: Call) -> ToAnthropicEvents | ToOpenAIChunks:
    if call.inbound_shape is Shape.ANTHROPIC:
        return ToAnthropicEvents(model=call.route.model)
    options = body.get("stream_options")
    asked = isinstance(options, dict) and options.get("include_usage") is True
    return ToOpenAIChunks(model=call.route.model, created=int(time.time()), include_usage=asked)


@dataclass(frozen=True, slots=True)
class TranslatedBody:
    """A non-streamed answer, or the provider's error, in the caller's shape."""

    shape: Shape

    def answer(self, content: bytes, call: Call) -> bytes:
        try:
            answer = orjson.loads(content)
        except orjson.JSONDecodeError:
            raise GatewayError(502, "The provider's answer was not JSON.") from None
        if not isinstance(answer, dict):
            raise GatewayError(502, "The provider's answer was not a JSON object.")
        if self.shape is Shape.ANTHROPIC:
            return orjson.dumps(translate_responses.completion_to_message(answer))
        created = int(time.time())
        return orjson.dumps(translate_responses.message_to_completion(answer, created=created))

    def error(self, content: bytes, status: int) -> bytes:
        return error_body(content, status, self.shape)
