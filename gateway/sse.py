"""Incremental Server-Sent Events parser: bytes in, events out.

It runs on every chunk of every streamed response, so it works on whole buffers
with `bytes.find` / one compiled regex and never loops over single bytes. Each
event keeps its exact bytes (`raw`), terminating blank line included, so the
proxy can relay what it parsed byte for byte.

Framing follows the WHATWG spec (html.spec.whatwg.org, "Server-sent events"):
a line ends with CRLF, LF or CR, and an event ends with an empty line. Comment
blocks (`: ping`) become events with `data == ""` rather than being dropped,
because their bytes must still reach the client. `id:` and `retry:` fields are
ignored: nothing in the gateway reads them, and they survive in `raw`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

# Two line terminators in a row end an event. A lone CR counts as a terminator
# only when no LF follows it, otherwise the CRLF pair would count as two.
_BOUNDARY = re.compile(rb"(?:\r\n|\n|\r(?!\n))(?:\r\n|\n|\r)")
_CR = 13
_COLON = 58
# A boundary is at most 4 bytes (CRLF CRLF): after a chunk that ended
# mid-boundary, re-scan this far back into the old buffer.
_MAX_BOUNDARY = 4


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event; `data` joins multi-line `data:` fields with "\\n"."""

    event: str | None
    data: str
    raw: bytes


class SSEParser:
    """Feed it chunks as they arrive; it returns the events each chunk completed."""

    __slots__ = ("_buffer", "_saw_cr", "_scan_from")

    def __init__(self) -> None:
        self._buffer = b""
        self._scan_from = 0
        self._saw_cr = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Return the events completed by `chunk`; partial bytes wait for the next one."""
        if not chunk:
            return []
        self._saw_cr = self._saw_cr or _CR in chunk
        return self._drain(self._buffer + chunk if self._buffer else bytes(chunk), final=False)

    def flush(self) -> list[SSEEvent]:
        """Return what is left at end of stream as events, even without a blank line."""
        events = self._drain(self._buffer, final=True) if self._buffer else []
        if self._buffer:
            events.append(_parse(self._buffer))
        self._buffer, self._scan_from = b"", 0
        return events

    def _drain(self, buffer: bytes, *, final: bool) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        start = 0
        pos = self._scan_from
        if not self._saw_cr:
            # The common case (LF-only servers): a plain substring search.
            while (end := buffer.find(b"\n\n", pos)) >= 0:
                pos = end + 2
                events.append(_parse(buffer[start:pos]))
                start = pos
        else:
            size = len(buffer)
            while (match := _BOUNDARY.search(buffer, pos)) is not None:
                end = match.end()
                if end == size and buffer[end - 1] == _CR and not final:
                    # The CR may be the first half of a CRLF still in flight.
                    break
                events.append(_parse(buffer[start:end]))
                start = pos = end
        self._buffer = buffer[start:]
        self._scan_from = max(0, len(self._buffer) - _MAX_BOUNDARY + 1)
        return events


def _parse(raw: bytes) -> SSEEvent:
    event: str | None = None
    data_lines: list[bytes] = []
    for line in raw.splitlines():  # bytes.splitlines splits on exactly CRLF, LF and CR
        if not line or line[0] == _COLON:
            continue
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            data_lines.append(value)
        elif name == b"event":
            event = value.decode("utf-8", "replace")
    # Events split only at CR/LF bytes, which never occur inside a UTF-8
    # sequence, so decoding per event cannot cut a character in half.
    return SSEEvent(event=event, data=b"\n".join(data_lines).decode("utf-8", "replace"), raw=raw)


def load_json(data: str) -> Any:
    """Decoded JSON of an event's data, or None when it is not JSON (`[DONE]`, garbage)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
