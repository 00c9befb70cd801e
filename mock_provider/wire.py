"""Plumbing both mock shapes share: the request log, faults on the wire, and streaming."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from mock_provider import faults
from mock_provider.faults import NO_FAULT, Fault, FaultCounter
from mock_provider.ledger import Ledger

LOG_SIZE = 1000
HANG_AFTER = 3  # events a `hang` fault sends before it stalls
CLIENT_GONE = 499  # nginx's "client closed request": recorded, never seen by anyone

Event = tuple[bytes, bool]  # an encoded SSE event, and whether it carries a token piece
ErrorRenderer = Callable[[int, str], web.Response]


class PromptCache:
    """The prompt-prefix digests the mock has 'cached', oldest evicted first."""

    def __init__(self, size: int = 4096) -> None:
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._size = size

    def __contains__(self, digest: object) -> bool:
        return digest in self._seen

    def add(self, digest: bytes) -> None:
        self._seen[digest] = None
        self._seen.move_to_end(digest)
        if len(self._seen) > self._size:
            self._seen.popitem(last=False)

    def clear(self) -> None:
        self._seen.clear()


@dataclass(slots=True)
class MockState:
    token_delay: float = 0.0
    always_fixed: bool = False  # `metis mock-provider --fixed`: every reply precomputed (bench/)
    always_gzip: bool = False  # compress every reply the client accepts gzip for
    requests: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=LOG_SIZE))
    faults: FaultCounter = field(default_factory=FaultCounter)
    cache: PromptCache = field(default_factory=PromptCache)
    fixed: dict[tuple[Any, ...], bytes] = field(default_factory=dict)  # x-mock-fixed bodies
    responses: dict[str, Any] = field(default_factory=dict)  # stored Responses API answers
    ledger: Ledger = field(default_factory=Ledger)  # what was served, for the reports
    report_page_size: int = 0  # 0: the providers' own page sizes (reports.py)

    def fixed_body(self, key: tuple[Any, ...], build: Callable[[], bytes]) -> bytes:
        body = self.fixed.get(key)
        if body is None:
            if len(self.fixed) > 256:  # keyed by model name, which clients choose
                self.fixed.clear()
            body = self.fixed[key] = build()
        return body

    def reset(self) -> None:
        self.requests.clear()
        self.faults.clear()
        self.cache.clear()
        self.responses.clear()
        self.ledger.clear()


STATE = web.AppKey("metis_mock_state", MockState)


@dataclass(slots=True)
class Exchange:
    """One request as a handler sees it: parsed body, log record, and the fault it asked for."""

    request: web.Request
    raw: bytes
    body: Any  # parsed JSON; None when the body is empty or malformed
    record: dict[str, Any]
    state: MockState
    fault: Fault = NO_FAULT

    def token_delay(self) -> float:
        try:
            return float(self.request.headers.get("x-mock-token-delay", self.state.token_delay))
        except ValueError:
            return self.state.token_delay

    def gzip(self) -> bool:
        headers = self.request.headers
        asked = self.state.always_gzip or headers.get("x-mock-gzip") == "1"
        return asked and "gzip" in headers.get("accept-encoding", "")

    def client_gone(self) -> bool:
        transport = self.request.transport
        return transport is None or transport.is_closing()

    def mark_disconnected(self) -> None:
        self.record["disconnected"] = True

    async def until_disconnected(self) -> None:
        # Polled rather than awaited: without handler_cancellation aiohttp tells us nothing.
        while not self.client_gone():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        self.mark_disconnected()


def recorded(
    handler: Callable[[Exchange], Awaitable[web.StreamResponse]],
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Wrap a handler so each call is logged, including whether the client left early."""

    async def endpoint(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        raw = await request.read()
        try:
            body = orjson.loads(raw) if raw else None
            if raw.count(b"[") + raw.count(b"{") > 250:
                orjson.dumps(body)  # as a provider would, refuse what it cannot re-encode
        except (orjson.JSONDecodeError, orjson.JSONEncodeError):
            body = None
        record: dict[str, Any] = {
            "method": request.method,
            "path": request.path,
            "query": request.query_string,
            "headers": {name.lower(): value for name, value in request.headers.items()},
            "body": body,
            "status": None,
            "disconnected": False,
            "started_at": time.time(),
            "finished_at": None,
        }
        state.requests.append(record)
        try:
            response = await handler(Exchange(request, raw, body, record, state))
            record["status"] = response.status
            return response
        except (asyncio.CancelledError, ConnectionResetError):
            record["disconnected"] = True
            raise
        finally:
            record["finished_at"] = time.time()

    return endpoint


async def apply_fault(ex: Exchange, text: str, error: ErrorRenderer) -> web.StreamResponse | None:
    """Pick the request's fault; return the response that replaces the completion, if any."""
    try:
        ex.fault = faults.requested(ex.request.headers, text, ex.state.faults)
    except ValueError as exc:
        return error(400, str(exc))
    if ex.fault.slow > 0:
        await asyncio.sleep(ex.fault.slow)
        if ex.client_gone():
            ex.mark_disconnected()
            return web.Response(status=CLIENT_GONE)
    if ex.fault.status is not None:
        return error(ex.fault.status, f"mock fault {ex.fault.status} (x-mock-fault)")
    return None


async def send_body(ex: Exchange, payload: bytes, headers: dict[str, str]) -> web.StreamResponse:
    if ex.fault.hang:
        await ex.until_disconnected()
        return web.Response(status=CLIENT_GONE)
    if ex.fault.cut is None:
        response = web.Response(body=payload, headers=headers, content_type="application/json")
        if ex.gzip():
            response.enable_compression(web.ContentCoding.gzip)
        return response
    # A declared length with half the bytes behind it: the client sees a truncated body.
    cut = web.StreamResponse(headers=headers)
    cut.content_type = "application/json"
    cut.content_length = len(payload)
    try:
        await cut.prepare(ex.request)
        await cut.write(payload[: len(payload) // 2])
    except ConnectionResetError:
        ex.mark_disconnected()
    _drop_connection(ex)
    return cut


async def send_events(
    ex: Exchange, events: list[Event], headers: dict[str, str]
) -> web.StreamResponse:
    response = web.StreamResponse(headers=headers)
    response.content_type = "text/event-stream"
    response.charset = "utf-8"
    if ex.gzip():
        response.enable_compression(web.ContentCoding.gzip)
    fault, delay = ex.fault, ex.token_delay()
    if fault.cut is not None:
        events = events[: fault.cut]
    elif fault.hang:
        events = events[:HANG_AFTER]
    try:
        await response.prepare(ex.request)
        if delay <= 0:  # the benchmark path: one write, no scheduling between events
            await response.write(b"".join(data for data, _ in events))
        else:
            for data, is_piece in events:
                if is_piece:
                    await asyncio.sleep(delay)
                await response.write(data)
        if fault.cut is not None:
            _drop_connection(ex)
        elif fault.hang:
            await ex.until_disconnected()
        else:
            await asyncio.sleep(fault.linger)  # the last event out, the body not yet ended
            await response.write_eof()
    except ConnectionResetError:
        ex.mark_disconnected()
    return response


def _drop_connection(ex: Exchange) -> None:
    # close(), not abort(): what was written still goes out, but no terminating chunk follows.
    if ex.request.transport is not None:
        ex.request.transport.close()
