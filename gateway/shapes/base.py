"""What every wire shape provides, and the body checks all shapes share.

A wire shape is an API dialect a client speaks (Anthropic Messages, OpenAI Chat
Completions, OpenAI Responses). Each has one module in this package that owns its
paths, the little of its request the gateway reads, its error envelope, its
/v1/models answer, its SSE conventions and its usage. Provider adapters
(gateway/providers/) say which shapes they serve.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from django.http import HttpRequest
from django.http.request import RawPostDataException

from analytics.usage import Usage
from gateway import intake
from gateway.errors import GatewayError, bad_request
from gateway.shapes import internal
from gateway.sse import SSEEvent

if TYPE_CHECKING:
    from gateway.routing import ModelEntry


class Shape(StrEnum):
    """A shape's name, as events and metrics record it (`inbound_shape`)."""

    ANTHROPIC = "anthropic"  # Anthropic Messages
    OPENAI = "openai"  # OpenAI Chat Completions
    RESPONSES = "responses"  # the OpenAI Responses API
    # No wire shape: an agent session's turn on `metis serve`, built in the internal form
    # and sent through the same pipeline (agent/pipeline.py). Not in SHAPES: no client
    # speaks it, and its calls are always translated into the provider's first shape.
    IN_PROCESS = "in-process"


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """An error to render: the gateway's own, or a provider's in another shape (`relayed`)."""

    status: int
    message: str
    param: str | None = None
    code: str | None = None  # OpenAI's error code, when the status's usual one would mislead
    type: str | None = None  # likewise OpenAI's error type
    relayed: bool = False


class WireShape(Protocol):
    shape: Shape
    paths: tuple[str, ...]  # the POST endpoints that take a body
    path_prefix: str  # any path under it is answered in this shape
    sdk_header: str | None  # a header only this shape's SDKs send (for shape-less paths)

    def parse(self, request: HttpRequest) -> dict[str, Any]:
        """The request body, checked for what the gateway itself needs (GatewayError 400)."""
        ...

    def error_body(self, error: ErrorInfo) -> bytes:
        """The error envelope."""
        ...

    def stream_error(self, message: str) -> bytes:
        """An SSE error event, for failures after a stream began."""
        ...

    def model_object(self, entry: ModelEntry) -> dict[str, Any]: ...
    def models_page(self, entries: list[ModelEntry]) -> dict[str, Any]: ...

    def ask_stream_usage(self, body: dict[str, Any]) -> bool:
        """Make a streaming body ask for usage (in place); True when the client had not
        asked, so the relay must drop what only the gateway wanted (`is_usage_only`)."""
        ...

    def is_usage_only(self, event: SSEEvent) -> bool: ...

    def ends_stream(self, event: SSEEvent) -> bool:
        """The stream's last event: after it the call is whole, whoever hangs up."""
        ...

    # Usage is read through the shape spoken on the wire to the provider (one provider
    # may serve several shapes), never through the provider.
    def usage_from_body(self, body: Mapping[str, Any]) -> Usage:
        """Usage of a non-streamed answer; missing or null fields count as 0."""
        ...

    def usage_from_event(self, event: SSEEvent, so_far: Usage) -> Usage:
        """Usage after `event`, given the usage seen before it; never raises, and
        returns `so_far` itself for events that carry no (readable) usage."""
        ...

    def text_from_event(self, event: SSEEvent) -> str:
        """Generated text in `event` (visible, reasoning and tool-call arguments),
        used to estimate output tokens of a stream cut off before its usage."""
        ...


class StreamReader(Protocol):
    """A provider's SSE events of this shape, read into internal stream events."""

    def feed(self, event: SSEEvent) -> list[internal.StreamEvent]: ...
    def finish(self) -> list[internal.StreamEvent]:
        """At the end of the upstream stream: whatever must still close it (a `Finish`
        and `Done` the provider never sent, say); nothing when it closed properly."""
        ...


class StreamWriter(Protocol):
    """Internal stream events written as this shape's SSE bytes, for the caller."""

    def write(self, event: internal.StreamEvent) -> list[bytes]: ...
    def finish(self) -> list[bytes]:
        """Whatever must still close the caller's stream; nothing if `Done` was written."""
        ...


class Translating(Protocol):
    """What a shape adds to `WireShape` to take part in cross-shape calls, through the
    internal form (gateway/shapes/internal.py). `unportable` receives every field the
    other side cannot carry (a 400, or dropped by the key's policy)."""

    def to_internal(
        self, body: dict[str, Any], unportable: internal.Unportable
    ) -> internal.Request:
        """A caller's request body of this shape (already `parse`d)."""
        ...

    def from_internal(
        self, request: internal.Request, unportable: internal.Unportable
    ) -> dict[str, Any]:
        """The body to send a provider of this shape (`model` is `request.model`)."""
        ...

    def response_to_internal(self, body: dict[str, Any]) -> internal.Response:
        """A provider's non-streamed answer of this shape."""
        ...

    def response_from_internal(
        self, response: internal.Response, request: internal.Request
    ) -> dict[str, Any]:
        """The non-streamed answer for a caller of this shape."""
        ...

    def stream_reader(self) -> StreamReader: ...
    def stream_writer(self, request: internal.Request) -> StreamWriter: ...


class TranslatingShape(WireShape, Translating, Protocol):
    """A wire shape that takes part in cross-shape calls (every registered one)."""


def read_body(request: HttpRequest, shape: Shape) -> dict[str, Any]:
    """The body as a JSON object, with the checks the message-list shapes (Anthropic,
    Chat) share; the provider validates the rest."""
    body = read_object(request, shape)
    if not isinstance(body.get("messages"), list):
        raise bad_request("messages is required and must be a list", param="messages")
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (type(max_tokens) is not int or max_tokens < 1):
        raise bad_request("max_tokens must be a positive integer", param="max_tokens")
    return body


def read_object(request: HttpRequest, shape: Shape) -> dict[str, Any]:
    """The body as a JSON object under the shape's size limit, `stream` a boolean."""
    try:
        raw = request.body
    except RawPostDataException:  # pragma: no cover - body always read once here
        raw = b""
    except Exception as exc:  # Django's RequestDataTooBig
        raise GatewayError(413, f"Request body too large: {exc}") from None
    if len(raw) > (limit := intake.gateway_limit(shape.value)):
        raise GatewayError(413, intake.too_large(len(raw), limit).message)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"Request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise bad_request("Request body must be a JSON object.")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise bad_request("stream must be true or false", param="stream")
    return body


def token_count(value: object) -> int:
    """A token count from upstream JSON: a non-negative int, else 0 (null,
    missing, strings and booleans from a misbehaving server included)."""
    if type(value) is int:
        return value if value > 0 else 0
    if type(value) is float and value.is_integer() and value > 0:
        return int(value)
    return 0
