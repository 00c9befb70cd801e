"""What goes upstream for one call, and how the answer is turned back for the caller.

An `Exchange` is planned before the call is sent: by proxy.py for a same-shape call
(the client's own bytes, relayed untouched), by crossing.py for a call to a model
served in another shape (translated both ways). proxy.py then sends it and finishes
the call the same way whichever planned it, so neither module calls back into the
other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from gateway.errors import GatewayError, bad_request
from gateway.shapes import WireShape
from gateway.sse import SSEEvent

if TYPE_CHECKING:
    from gateway.calls import Call


class EventRelay(Protocol):
    """What the client gets for each upstream SSE event, and at the stream's end."""

    def feed(self, event: SSEEvent) -> list[bytes]: ...
    def finish(self) -> list[bytes]: ...


class BodyTranslation(Protocol):
    """A non-streamed answer (or error) rewritten into the caller's shape."""

    def answer(self, content: bytes, call: Call) -> bytes: ...
    def error(self, content: bytes, status: int) -> bytes: ...


# Not frozen: a frozen dataclass is several times slower to make, and one is made per call.
@dataclass(slots=True)
class Exchange:
    path: str  # path and query, under the upstream's base URL
    body: bytes  # as sent upstream
    sent: dict[str, Any]  # the same, parsed: estimates input a cut-short call never reported
    events: Callable[[], EventRelay]  # made when a stream begins
    translation: BodyTranslation | None = None  # None: the answer is relayed as it came


@dataclass(slots=True)
class Passthrough:
    """Same shape: every event's own bytes, less the usage chunk the client did not ask for."""

    wire: WireShape
    strip_usage_chunk: bool = False

    def __call__(self) -> Passthrough:
        return self

    def feed(self, event: SSEEvent) -> list[bytes]:
        if self.strip_usage_chunk and self.wire.is_usage_only(event):
            return []
        return [event.raw]

    def finish(self) -> list[bytes]:
        return []


def encode(body: dict[str, Any]) -> bytes:
    """The body as JSON for upstream: a 400 for what orjson will not write back. It reads
    JSON nested up to 1,024 levels but writes only 254, and no real call comes near that."""
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError as exc:
        raise cannot_encode(exc) from None


def cannot_encode(exc: orjson.JSONEncodeError) -> GatewayError:
    return bad_request(f"Request body cannot be forwarded: {exc} (JSON nested too deeply; "
                       "at most 254 levels)")  # fmt: skip
