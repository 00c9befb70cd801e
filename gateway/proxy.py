"""THE hot path: a provider-shape call in, the provider's answer out, the call recorded.

    request → auth (cached key) → parse → route → upstream (pooled, retried)
            → response relayed (SSE event by event) → usage + price → events queued

Nothing here waits on a database write. Disconnects: when the client goes away,
Django cancels the view (non-streaming) or the relay generator (streaming);
either way the `finally` closes the upstream connection and records the call
with error_class CANCELLED and the usage seen so far, plus estimates of what the
provider bills but never got to report (gateway.estimates).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from analytics.usage import Usage
from analytics.writer import new_id
from gateway import auth, budgets, calls, crossing, estimates, metrics, pacing, routing, upstream
from gateway.calls import Call
from gateway.errors import GatewayError
from gateway.exchange import BodyTranslation, EventRelay, Exchange, Passthrough, encode
from gateway.providers import UpstreamRequest
from gateway.shapes import SHAPES, Shape, WireShape
from gateway.sse import SSEEvent, SSEParser

logger = logging.getLogger(__name__)
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
DROPPED_HEADER = "x-metis-dropped-params"  # fields a cross-shape call dropped, by key policy


async def forward(request: HttpRequest, shape: Shape) -> HttpResponse:
    started = time.perf_counter()
    request.metis_shape = shape  # for the exception handler in api.py
    caller = getattr(request, "metis_caller", None) or await auth.authenticate(request.headers)
    wire = SHAPES[shape]
    body = wire.parse(request)
    route = await routing.route(body, caller, shape)
    call = Call(f"metis_{new_id()}", caller, route, shape, body.get("stream") is True, started)
    if call.upstream_shape is shape:
        exchange = same_shape(request, body, call, wire)
    else:  # e.g. the openai SDK calling a Claude model
        exchange = crossing.translated(body, call)
    response = await send(call, upstream_request(request, route, exchange), exchange.sent)
    if call.stream and response.status == 200 and is_event_stream(response):
        return streaming_response(response, call, exchange.events())
    return await respond(response, call, exchange.translation)


def upstream_request(
    request: HttpRequest, route: routing.Route, exchange: Exchange
) -> UpstreamRequest:
    """The exchange addressed to the routed upstream, with its key and the client's headers."""
    return route.upstream.adapter.build_request(
        path=exchange.path,
        body=exchange.body,
        client_headers=request.headers,
        api_key=route.api_key,
        base_url=route.upstream.base_url,
    )


def same_shape(request: HttpRequest, body: dict[str, Any], call: Call, wire: WireShape) -> Exchange:
    """The client's own bytes to the same path, unless the body had to change (the routed
    model; usage asked for on a stream): then re-encoded, and the relay drops what only the
    gateway asked for."""
    changed = body.get("model") != call.route.model
    body["model"] = call.route.model
    strip = call.stream and wire.ask_stream_usage(body)
    raw = encode(body) if changed or strip else request.body
    return Exchange(request.get_full_path(), raw, body, Passthrough(wire, strip))


async def send(
    call: Call, upstream_request: UpstreamRequest, body: dict[str, Any]
) -> aiohttp.ClientResponse:
    """Hold the call to its budgets and rate limits, then send it upstream. From here on
    every outcome, a refusal included, is recorded (and settles the reservation).
    `body` is what goes upstream, kept to estimate input a cancelled call never reported."""
    metrics.in_flight.inc()  # decremented when calls.record() takes the call
    try:
        call.reservation = await budgets.check(
            call.caller.key.id, call.request_id, call.route, body, len(upstream_request.body)
        )
        call.sent_body = body
        calls.start(call, len(upstream_request.body))  # a crash from here on is recorded
        call.upstream_started = time.perf_counter()
        if call.stream:
            pacing.stream_sent(call)
        response, call.retries = await upstream.send(
            upstream_request, provider=call.route.upstream.name
        )
    except BaseException as exc:
        fail(call, exc)
        raise
    call.status, call.upstream_request_id = response.status, upstream_request_id(response)
    return response


async def respond(
    response: aiohttp.ClientResponse, call: Call, translation: BodyTranslation | None
) -> HttpResponse:
    try:
        content = await response.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        status = 504 if isinstance(exc, TimeoutError) else 502
        error = GatewayError(status, f"The provider's answer broke off: {exc!r}",
                             error_class="UPSTREAM_ERROR")  # fmt: skip
        fail(call, error)  # recorded once, as the client's answer
        raise error from None
    except BaseException as exc:
        fail(call, exc)
        raise
    finally:
        response.release()
    call.finished = time.perf_counter()
    call.first_byte = call.finished
    if response.status == 200:
        call.usage = usage_of(call, content)
        if translation is not None:
            try:
                content = translation.answer(content, call)
            except GatewayError as exc:
                fail(call, exc)
                raise
    else:
        call.error_class = f"UPSTREAM_{response.status}"
        if translation is not None:
            content = translation.error(content, response.status)
    calls.record(call)
    http = HttpResponse(content, status=response.status)
    for name, value in upstream.relayed_headers(response).items():
        http[name] = value
    if response.status >= 500:
        # The provider's error, relayed: say so, rather than Django's "Internal Server Error".
        logger.warning("%s: provider %s answered %d", call.request_id, call.route.upstream.name,
                       response.status)  # fmt: skip
        http._has_been_logged = True
    http["x-metis-request-id"] = call.request_id
    http["x-metis-overhead-ms"] = f"{call.overhead_ms:.3f}"
    if call.dropped_params:
        http[DROPPED_HEADER] = ",".join(call.dropped_params)
    if call.cost_usd is not None:
        http["x-metis-cost-usd"] = format(call.cost_usd, "f")
    return http


def streaming_response(
    response: aiohttp.ClientResponse, call: Call, events: EventRelay
) -> StreamingHttpResponse:
    calls.progress(call, None, 0)  # the status line goes out before the first byte: journal it
    headers = {**upstream.relayed_headers(response), **SSE_HEADERS}
    if call.dropped_params:
        headers[DROPPED_HEADER] = ",".join(call.dropped_params)
    return RelayedStream(response, call, events, headers=headers)


class RelayedStream(StreamingHttpResponse):
    """The relay as Django's response. Closed with its relay never started (the client left
    while the status line waited on a full socket), it ends the call itself: an async
    generator that never ran never runs its `finally`. A relay that started ends the call in
    its `finally`, with the usage it saw: when it ends, when it is cancelled, and when
    Django's `send_response` closes it (it iterates the response inside `aclosing`)."""

    def __init__(
        self, response: aiohttp.ClientResponse, call: Call, events: EventRelay, **kwargs: Any
    ) -> None:
        super().__init__(relay(response, call, events), status=200, **kwargs)
        self.upstream, self.call = response, call

    def close(self) -> None:
        try:
            super().close()
        finally:
            if not self.call.relay_started:
                self.upstream.close()
                fail(self.call, asyncio.CancelledError())


async def relay(
    response: aiohttp.ClientResponse, call: Call, events: EventRelay
) -> AsyncIterator[bytes]:
    """Relay SSE as it arrives, whole events at a time, reading usage from a parsed copy."""
    call.relay_started = True
    parser, seen = SSEParser(), StreamUsage(SHAPES[call.upstream_shape])
    try:
        async for chunk in response.content.iter_any():
            if call.first_byte is None:
                call.first_byte = time.perf_counter()
                pacing.answered(call)
            out = []
            for event in parser.feed(chunk):
                seen.read(event)
                out.extend(events.feed(event))
            calls.progress(call, seen.usage, seen.text_chars)  # before the client sees it
            if out:
                yield b"".join(out)
        tail = []
        for event in parser.flush():
            seen.read(event)
            tail.extend(events.feed(event))
        if tail := b"".join([*tail, *events.finish()]):
            yield tail
    except (asyncio.CancelledError, GeneratorExit):
        if not seen.ended:  # a client that hangs up after the last event had it all
            call.error_class = "CANCELLED"
        raise
    except (aiohttp.ClientError, TimeoutError) as exc:
        call.error_class = "UPSTREAM_STREAM_ERROR"
        yield SHAPES[call.inbound_shape].stream_error(f"The provider's stream broke off: {exc}")
    finally:
        response.close()  # the provider sees the connection closed at once
        call.finished = time.perf_counter()
        call.usage = seen.completed(call.sent_body)
        calls.record(call)


class StreamUsage:
    """The usage a stream reported, and whether it reported any: only what the provider
    did not report is estimated (an `output_tokens: 0` it did report stays 0)."""

    def __init__(self, wire: WireShape) -> None:
        self.wire = wire  # the shape spoken to the provider
        self.usage = Usage()
        self.reported = False  # some event carried usage (input comes with the first)
        self.output_reported = False  # usage came after the text began: the output count
        self.text_chars = 0
        self.ended = False  # the stream's last event came

    def read(self, event: SSEEvent) -> None:
        self.ended = self.ended or self.wire.ends_stream(event)
        self.text_chars += len(self.wire.text_from_event(event))
        usage = self.wire.usage_from_event(event, self.usage)
        if usage is not self.usage:  # `so_far` itself comes back for events without usage
            self.reported = True
            self.output_reported = self.output_reported or self.text_chars > 0
            self.usage = usage

    def completed(self, sent_body: dict[str, Any] | None) -> Usage:
        usage = self.usage
        if not self.reported:
            usage = estimates.with_input(usage, sent_body)
        if self.text_chars and not self.output_reported:
            usage = estimates.with_output(usage, self.text_chars)
        return usage


def fail(call: Call, exc: BaseException) -> None:
    classify(call, exc)
    if call.error_class == "CANCELLED" and call.upstream_started and call.status in (0, 200):
        # The provider had the request, so it bills the input, which it never got to report.
        call.usage = estimates.with_input(call.usage, call.sent_body)
    calls.record(call)


def classify(call: Call, exc: BaseException) -> None:
    """Status and error class of a call that ended in `exc`."""
    if isinstance(exc, asyncio.CancelledError):
        call.error_class = "CANCELLED"
    elif isinstance(exc, GatewayError):
        call.status, call.error_class = exc.status, exc.error_class
    else:
        call.status, call.error_class = 502, "UPSTREAM_ERROR"


def usage_of(call: Call, content: bytes) -> Usage:
    try:
        return SHAPES[call.upstream_shape].usage_from_body(orjson.loads(content))
    except (orjson.JSONDecodeError, AttributeError, TypeError):
        return Usage()


def is_event_stream(response: aiohttp.ClientResponse) -> bool:
    return response.headers.get("content-type", "").startswith("text/event-stream")


def upstream_request_id(response: aiohttp.ClientResponse) -> str | None:
    return response.headers.get("request-id") or response.headers.get("x-request-id")
