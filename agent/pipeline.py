"""An agent turn through the gateway's own pipeline, in this process: no HTTP hop.

This is the one module of the agent surface that calls into the gateway, and it calls
the same pieces `gateway.proxy.forward()` does, in the same order:

    routing.route → Call → the provider's shape from the internal form (as crossing.py
    does for a caller) → proxy.send (budgets and rate limits, journal, upstream with
    retries) → the stream read for usage (proxy.StreamUsage) → calls.record

so a turn is held to the same budgets, priced by the same lookup and recorded with the
same events, with `inbound_shape: "in-process"`. The request is built in the internal
form (gateway/shapes/internal.py) and always streamed upstream: the answer arrives as
internal stream events whether the client of the session streams or not, and a turn cut
short still has the usage seen so far. Cancellation is the proxy's: when the task is
cancelled (the client left) or the event iterator is closed, the upstream connection is
closed and the call recorded with error_class CANCELLED.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
from django.utils import timezone

from analytics.writer import new_id
from gateway import auth, calls, routing
from gateway.calls import Call
from gateway.crossing import relayed_error
from gateway.errors import GatewayError
from gateway.exchange import encode
from gateway.providers import UpstreamRequest
from gateway.proxy import StreamUsage, is_event_stream, send
from gateway.shapes import SHAPES, Shape, internal
from gateway.sse import SSEParser

logger = logging.getLogger(__name__)
SHAPE = Shape.IN_PROCESS
MAX_OUTPUT_TOKENS = 4096  # what the Anthropic shape sends when a caller names none


async def caller_for(token_hash: str, user: str | None = None) -> auth.Caller:
    """The caller a session's turns are made as: its key, live (not revoked or expired)."""
    key = await auth.lookup_hash(token_hash)
    if key is None:
        raise GatewayError(401, "This session's gateway key no longer exists.")
    if key.revoked:
        raise GatewayError(401, f"Gateway key {key.id} has been revoked.")
    if key.expires_at is not None and key.expires_at <= timezone.now():
        raise GatewayError(401, f"Gateway key {key.id} expired at {key.expires_at.isoformat()}.")
    return auth.Caller(key=key, user=user or key.user)


async def route(caller: auth.Caller, model: str | None, *, tools: bool) -> routing.Route:
    """The model for a turn: `model` when pinned, else the routing chain's choice (facts:
    `shape: in-process`, `stream: true`, `tools`)."""
    facts = {"model": model, "stream": True, "tools": [True] if tools else []}
    return await routing.route(facts, caller, SHAPE)


@dataclass(slots=True)
class Started:
    """A turn whose provider answered 200 with a stream: read it with `events()`."""

    call: Call
    response: aiohttp.ClientResponse


class UpstreamRefused(GatewayError):
    """The provider answered with an error status (after the gateway's retries)."""


@dataclass(slots=True)
class Prepared:
    """A turn addressed to its routed provider, not sent yet."""

    call: Call
    upstream: UpstreamRequest
    sent: dict[str, Any]  # the body, as sent


def prepare(caller: auth.Caller, route_: routing.Route, request: internal.Request) -> Prepared:
    """The turn in the routed provider's shape, from the internal form (as crossing.py
    makes a caller's request); a GatewayError for a field the provider cannot take."""
    call = Call(f"metis_{new_id()}", caller, route_, SHAPE, True, time.perf_counter())
    provider = SHAPES[call.upstream_shape]
    unportable = internal.Unportable(drop=caller.key.drop_unsupported_params, target=route_.model)
    request.model, request.stream = route_.model, True
    request.max_output_tokens = request.max_output_tokens or MAX_OUTPUT_TOKENS
    sent = provider.from_internal(request, unportable)
    provider.ask_stream_usage(sent)  # Chat Completions streams report usage only if asked
    call.dropped_params = unportable.dropped
    adapter = route_.upstream.adapter
    upstream = adapter.build_request(
        path=adapter.generate_path(route_.model, call.upstream_shape, stream=True),
        body=encode(sent),
        client_headers={},
        api_key=route_.api_key,
        base_url=route_.upstream.base_url,
    )
    return Prepared(call, upstream, sent)


async def start(prepared: Prepared) -> Started:
    """Send the turn upstream. Raises GatewayError for a refusal (budget, rate limit) and
    UpstreamRefused for the provider's error; every outcome from the budget check on is
    recorded, a cancellation included, as in the proxy."""
    call, upstream, sent = prepared.call, prepared.upstream, prepared.sent
    response = await send(call, upstream, sent)
    if call.reservation is not None and not call.reservation.shared:
        warn_unshared_budgets()
    if response.status == 200 and is_event_stream(response):
        calls.progress(call, None, 0)
        return Started(call, response)
    try:
        content = await response.read()
    except (aiohttp.ClientError, TimeoutError):
        content = b""
    except BaseException:
        call.error_class = "CANCELLED"
        calls.record(call)
        raise
    finally:
        response.release()
    # An error status, or (never from a real provider) a 200 that is no stream.
    ok = response.status == 200
    call.error_class = "UPSTREAM_ERROR" if ok else f"UPSTREAM_{response.status}"
    calls.record(call)
    message, _ = relayed_error(content, response.status)
    status = 502 if ok else response.status
    raise UpstreamRefused(status, f"The provider refused the turn: {message}",
                          error_class=call.error_class)  # fmt: skip


_warned = False


def warn_unshared_budgets() -> None:
    """Once per process: turns held to budgets in this process's memory alone."""
    global _warned
    if not _warned:
        _warned = True
        logger.warning("agent turns hold their budgets in this process and the gateway "
                       "holds its calls' in its own: set REDIS_URL to hold both against one "
                       "budget (README, The agent surface)")  # fmt: skip


async def events(started: Started) -> AsyncIterator[internal.StreamEvent]:
    """The answer as internal stream events, read for usage on the way (as proxy.relay
    reads a stream), and the call recorded when it ends, however it ends."""
    call, response = started.call, started.response
    wire = SHAPES[call.upstream_shape]
    parser, seen, reader = SSEParser(), StreamUsage(wire), wire.stream_reader()
    try:
        async for chunk in response.content.iter_any():
            if call.first_byte is None:
                call.first_byte = time.perf_counter()
            out: list[internal.StreamEvent] = []
            for event in parser.feed(chunk):
                seen.read(event)
                out.extend(reader.feed(event))
            calls.progress(call, seen.usage, seen.text_chars)
            for ours in out:
                yield ours
        tail: list[internal.StreamEvent] = []
        for event in parser.flush():
            seen.read(event)
            tail.extend(reader.feed(event))
        for ours in [*tail, *reader.finish()]:
            yield ours
    except (asyncio.CancelledError, GeneratorExit):
        call.error_class = "CANCELLED"
        raise
    except (aiohttp.ClientError, TimeoutError) as exc:
        call.error_class = "UPSTREAM_STREAM_ERROR"
        yield internal.Error(f"The provider's stream broke off: {exc}")
    finally:
        response.close()  # the provider sees the connection closed at once
        call.finished = time.perf_counter()
        call.usage = seen.completed(call.sent_body)
        calls.record(call)
