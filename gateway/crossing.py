"""The cross-shape path: a client of one shape calling a model served in another.

`proxy.forward()` asks here for the call's `Exchange` only when the provider does not
serve the caller's shape (`Call.upstream_shape`), so the same-shape hot path carries
none of this. Every crossing is the same composition, with no code per pair of shapes:

    caller.to_internal → provider.from_internal                      (the request)
    provider.response_to_internal → caller.response_from_internal    (the answer)
    provider.stream_reader → caller.stream_writer                    (the stream)
    the provider's error → the caller's error envelope

proxy.py sends and records the call exactly as a same-shape one: the real upstream
model, usage read by the upstream's wire shape, `inbound_shape` the caller's. Fields
with no equivalent go through one `Unportable` per call: a 400 naming them, or dropped
when the caller's key allows it, and listed on the call (`dropped_params`). Nothing
here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import orjson

from gateway.calls import Call
from gateway.errors import GatewayError
from gateway.exchange import Exchange, cannot_encode, encode
from gateway.shapes import SHAPES, ErrorInfo, internal
from gateway.shapes.base import StreamReader, StreamWriter, TranslatingShape
from gateway.sse import SSEEvent


def translated(body: dict[str, Any], call: Call) -> Exchange:
    """The call in the upstream's shape, and the way back; `body` is the caller's parsed body."""
    caller, provider, route = SHAPES[call.inbound_shape], SHAPES[call.upstream_shape], call.route
    unportable = internal.Unportable(
        drop=call.caller.key.drop_unsupported_params, target=route.model
    )
    try:
        request = caller.to_internal(body, unportable)
        request.model = route.model
        sent = provider.from_internal(request, unportable)
    except orjson.JSONEncodeError as exc:  # a tool call's input, nested too deeply
        raise cannot_encode(exc) from None
    call.dropped_params = unportable.dropped
    return Exchange(
        path=route.upstream.adapter.generate_path(
            route.model, call.upstream_shape, stream=call.stream
        ),
        body=encode(sent),
        sent=sent,
        events=partial(TranslatedEvents.between, provider, caller, request),
        translation=TranslatedBody(caller, provider, request),
    )


class TranslatedEvents:
    """The provider's SSE events, read into the internal form and written in the caller's."""

    def __init__(self, reader: StreamReader, writer: StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    def between(
        cls, provider: TranslatingShape, caller: TranslatingShape, request: internal.Request
    ) -> TranslatedEvents:
        return cls(provider.stream_reader(), caller.stream_writer(request))

    def feed(self, event: SSEEvent) -> list[bytes]:
        return [raw for ours in self.reader.feed(event) for raw in self.writer.write(ours)]

    def finish(self) -> list[bytes]:
        tail = [raw for ours in self.reader.finish() for raw in self.writer.write(ours)]
        return [*tail, *self.writer.finish()]


@dataclass(frozen=True, slots=True)
class TranslatedBody:
    """A non-streamed answer, or the provider's error, in the caller's shape."""

    caller: TranslatingShape
    provider: TranslatingShape
    request: internal.Request

    def answer(self, content: bytes, call: Call) -> bytes:
        try:
            answer = orjson.loads(content)
        except orjson.JSONDecodeError:
            raise GatewayError(502, "The provider's answer was not JSON.") from None
        if not isinstance(answer, dict):
            raise GatewayError(502, "The provider's answer was not a JSON object.")
        response = self.provider.response_to_internal(answer)
        return orjson.dumps(self.caller.response_from_internal(response, self.request))

    def error(self, content: bytes, status: int) -> bytes:
        message, param = relayed_error(content, status)
        info = ErrorInfo(status, message, param, relayed=True)
        return self.caller.error_body(info)


def relayed_error(content: bytes, status: int) -> tuple[str, str | None]:
    """The message (and param) of a provider's error body: every shape nests them in
    `error`; anything else is shown as text."""
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
