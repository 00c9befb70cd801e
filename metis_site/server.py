"""How both Metis servers hold up against slow and oversized requests.

uvicorn closes an idle keep-alive connection, but nothing else: a client that trickles
its headers or its body a byte at a time (slowloris) kept a connection, and a request
task, for as long as it liked. Here:

- `HttpProtocol` gives each request's line and headers METIS_CLIENT_HEADER_TIMEOUT
  seconds from the connection's start (or from the first byte of a keep-alive request);
  past that the server closes the connection.
- The body gets METIS_CLIENT_BODY_TIMEOUT seconds once the headers are in, and is read
  under a size limit (gateway/intake.py), by the gateway's own handler and by
  `ServeASGIHandler` here, which answers a refusal (413, 408) as JSON, not Django's HTML.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpResponse, JsonResponse
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway import intake


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for each request's headers."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = settings.METIS_CLIENT_HEADER_TIMEOUT
        self.header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.arm_header_deadline()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.header_deadline is None:
            self.arm_header_deadline()

    def on_headers_complete(self) -> None:
        self.disarm_header_deadline()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self.disarm_header_deadline()
        super().connection_lost(exc)

    def arm_header_deadline(self) -> None:
        self.header_deadline = self.loop.call_later(self.header_timeout, self.headers_too_slow)

    def disarm_header_deadline(self) -> None:
        if self.header_deadline is not None:
            self.header_deadline.cancel()
            self.header_deadline = None

    def headers_too_slow(self) -> None:
        self.header_deadline = None
        if not self.transport.is_closing():
            self.logger.info("%s: closed, no request headers within %g s (METIS_CLIENT_HEADER_"
                             "TIMEOUT)", self.client, self.header_timeout)  # fmt: skip
            self.transport.close()


@dataclass(frozen=True, slots=True)
class Incoming:
    """An ASGI receive() that knows its request's headers, for `read_body`."""

    receive: Any
    headers: list[tuple[bytes, bytes]]

    async def __call__(self) -> dict[str, Any]:
        return await self.receive()


class ServeASGIHandler(ASGIHandler):
    """Django's handler for `metis serve`, reading bodies under a limit and a deadline."""

    async def handle(self, scope, receive, send) -> None:
        try:
            await super().handle(scope, Incoming(receive, scope["headers"]), send)
        except intake.BodyRefused as exc:  # raised by read_body, before anything was sent
            await self.send_response(refusal(scope["path"], exc), send)

    async def read_body(self, receive: Incoming):  # type: ignore[override]
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE or intake.PROVIDER_BODY_LIMITS["anthropic"]
        seconds = settings.METIS_CLIENT_BODY_TIMEOUT
        return await intake.read_body(receive, receive.headers, limit=limit, seconds=seconds)


def refusal(path: str, exc: intake.BodyRefused) -> HttpResponse:
    message = exc.message.replace("METIS_MAX_BODY_BYTES", "metis serve's limit")
    if is_page(path):
        response: HttpResponse = HttpResponse(message, status=exc.status, content_type="text/plain")
    else:
        response = JsonResponse({"detail": message}, status=exc.status)
    response["Connection"] = "close"  # what is left of the body is never read
    return response


def is_page(path: str) -> bool:
    """The admin and dashboard are pages for a browser; everything else answers JSON."""
    return path.startswith(("/admin/", "/dashboard/", "/login/", "/logout/"))
