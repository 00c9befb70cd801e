"""Reading a request body under a size limit and a deadline, before any view sees it.

Django's ASGIHandler reads every body in full, spooling past 2.5 MB to a temporary file,
before the URLconf or a view can refuse it. Both Metis servers read through `read_body`
instead: a body whose Content-Length is over the limit is refused without reading a byte,
a chunked one as soon as it crosses the limit, and a body that trickles in slower than
the deadline allows (slowloris) is cut off. The body is kept in memory: it is never larger
than the limit, and the gateway parses it whole anyway.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestAborted

# The providers' own request limits, which the gateway applies unless METIS_MAX_BODY_BYTES
# says otherwise: Anthropic's Messages API refuses bodies over 32 MB; OpenAI allows 50 MB
# of images per request, which is about 67 MB of JSON once base64-encoded.
PROVIDER_BODY_LIMITS = {
    "anthropic": 32 * 1024 * 1024,
    "openai": 64 * 1024 * 1024,
    "responses": 64 * 1024 * 1024,
}

Receive = Callable[[], Awaitable[dict[str, Any]]]


class BodyRefused(Exception):
    """The body is not read (on): `status` 413 (too large) or 408 (too slow)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def gateway_limit(shape: str) -> int:
    return settings.METIS_MAX_BODY_BYTES or PROVIDER_BODY_LIMITS[shape]


def declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the HTTP server refuses a malformed length before us
    return None


def has_body(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
            return True
    return False


def too_large(size: int | None, limit: int) -> BodyRefused:
    what = f"is {size:,} bytes" if size is not None else "is larger than that"
    return BodyRefused(
        413,
        f"Request body {what}; the limit is {limit:,} bytes (METIS_MAX_BODY_BYTES). "
        "Send less: shorten the conversation, or move large documents out of the prompt.",
    )


async def read_body(
    receive: Receive, headers: list[tuple[bytes, bytes]], *, limit: int, seconds: float
) -> io.BytesIO:
    """The whole body, or BodyRefused; RequestAborted when the client leaves first."""
    size = declared_length(headers)
    if size is not None and size > limit:
        raise too_large(size, limit)
    chunks, received = [], 0
    try:
        async with asyncio.timeout(seconds):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise RequestAborted
                chunk = message.get("body", b"")
                received += len(chunk)
                if received > limit:
                    raise too_large(None, limit)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
    except TimeoutError:
        raise BodyRefused(
            408,
            f"The request body did not arrive within {seconds:g} s "
            f"(METIS_CLIENT_BODY_TIMEOUT); {received:,} bytes came.",
        ) from None
    # One join, and BytesIO shares that buffer: request.body reads it back without a copy.
    return io.BytesIO(b"".join(chunks))
