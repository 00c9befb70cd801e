"""Anthropic messages and their event streams ↔ the internal form.

Message: https://docs.anthropic.com/en/api/messages#response
Streams: https://docs.anthropic.com/en/docs/build-with-claude/streaming
Usage in Anthropic's terms: `input_tokens` EXCLUDES cache reads and writes.

A call of `STRUCTURED_TOOL` (structured output asked through a forced tool, requests.py)
is read as the text answer it stands for: its input, as JSON text.
"""

from __future__ import annotations

from typing import Any

import orjson

from analytics.usage import Usage
from gateway.shapes import internal
from gateway.shapes.anthropic.requests import STRUCTURED_TOOL
from gateway.shapes.anthropic.usage import read_usage
from gateway.shapes.internal import (
    Done,
    Error,
    Finish,
    PartDelta,
    PartStart,
    PartStop,
    Reasoning,
    Response,
    Start,
    Text,
    ToolCall,
)
from gateway.shapes.reading import arguments_object, listed
from gateway.sse import SSEEvent, load_json

STOPS = frozenset({"end_turn", "max_tokens", "stop_sequence", "tool_use", "refusal"})


def stop_of(reason: Any) -> internal.StopReason:
    # pause_turn (a server tool paused the turn) reads as an ended turn elsewhere.
    return reason if isinstance(reason, str) and reason in STOPS else "end_turn"


def usage_out(usage: Usage) -> dict[str, Any]:
    uncached = usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens
    return {
        "input_tokens": max(uncached, 0),
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
        "output_tokens": usage.output_tokens,
    }


# ---- whole answers -----------------------------------------------------------------------


def response_to_internal(body: dict[str, Any]) -> Response:
    parts: list[Text | ToolCall | Reasoning] = []
    for block in listed(body.get("content")):
        if (part := _part(block)) is not None:
            parts.append(part)
    stop = stop_of(body.get("stop_reason"))
    if any(_structured(p) for p in parts):
        parts = [Text(p.arguments) if _structured(p) else p for p in parts]  # type: ignore[union-attr]
        stop = "tool_use" if any(isinstance(p, ToolCall) for p in parts) else "end_turn"
    usage = body.get("usage")
    return Response(
        id=str(body.get("id", "")).removeprefix("msg_"),
        model=str(body.get("model", "")),
        parts=parts,
        stop=stop,
        usage=read_usage(usage, Usage()) if isinstance(usage, dict) else Usage(),
    )


def _part(block: Any) -> Text | ToolCall | Reasoning | None:
    kind = block.get("type") if isinstance(block, dict) else None
    if kind == "text":
        return Text(str(block.get("text", "")))
    if kind == "tool_use":
        arguments = orjson.dumps(block.get("input") or {}).decode()
        return ToolCall(str(block.get("id", "")), str(block.get("name", "")), arguments)
    if kind == "thinking":
        return Reasoning(str(block.get("thinking", "")), signature=block.get("signature"))
    if kind == "redacted_thinking":
        return Reasoning(encrypted=str(block.get("data", "")))
    return None  # server tool blocks: Anthropic's own, nothing another shape can show


def _structured(part: Any) -> bool:
    return isinstance(part, ToolCall) and part.name == STRUCTURED_TOOL


def response_from_internal(response: Response, request: internal.Request) -> dict[str, Any]:
    return {
        "id": "msg_" + response.id,
        "type": "message",
        "role": "assistant",
        "model": response.model,
        "content": [_block(p) for p in response.parts],
        "stop_reason": response.stop,
        "stop_sequence": None,
        "usage": usage_out(response.usage),
    }


def _block(part: Text | ToolCall | Reasoning) -> dict[str, Any]:
    if isinstance(part, Text):
        return {"type": "text", "text": part.text}
    if isinstance(part, ToolCall):
        tool_use = {"type": "tool_use", "id": part.id, "name": part.name}
        return {**tool_use, "input": arguments_object(part.arguments)}
    if part.encrypted is not None:
        return {"type": "redacted_thinking", "data": part.encrypted}
    return {"type": "thinking", "thinking": part.text, "signature": part.signature or ""}


# ---- streams -----------------------------------------------------------------------------


class StreamReader:
    """Anthropic's events, read into internal stream events."""

    def __init__(self) -> None:
        self.usage = Usage()
        self.stop: internal.StopReason = "end_turn"
        self.open: set[int] = set()
        self.started = self.done = False
        self.tool_calls = self.structured = False  # to read the stop reason right

    def feed(self, event: SSEEvent) -> list[internal.StreamEvent]:
        payload = load_json(event.data)
        if not isinstance(payload, dict) or self.done:
            return []
        kind = payload.get("type")
        index = payload.get("index") if type(payload.get("index")) is int else 0
        if kind == "message_start":
            message = payload.get("message") if isinstance(payload.get("message"), dict) else {}
            if isinstance(usage := message.get("usage"), dict):
                # Its output_tokens is a placeholder; the real count comes in message_delta.
                self.usage = read_usage({**usage, "output_tokens": 0}, Usage())
            self.started = True
            start_id = str(message.get("id", "")).removeprefix("msg_")
            return [Start(start_id, str(message.get("model", "")), self.usage)]
        if kind == "content_block_start":
            part = _part(payload.get("content_block"))
            if part is None:
                return []
            if _structured(part):
                part, self.structured = Text(""), True  # its input deltas are the answer
            elif isinstance(part, (Text, Reasoning)):
                part.text = ""  # deltas carry it
            else:
                part.arguments, self.tool_calls = "", True
            self.open.add(index)
            return [PartStart(index, part)]
        if kind == "content_block_delta" and index in self.open:
            return _delta(index, payload.get("delta"))
        if kind == "content_block_stop" and index in self.open:
            self.open.discard(index)
            return [PartStop(index)]
        if kind == "message_delta":
            delta = payload.get("delta") if isinstance(payload.get("delta"), dict) else {}
            if delta.get("stop_reason"):
                self.stop = stop_of(delta["stop_reason"])
            if self.stop == "tool_use" and self.structured and not self.tool_calls:
                self.stop = "end_turn"
            if isinstance(usage := payload.get("usage"), dict):
                self.usage = read_usage(usage, self.usage)
            return []
        if kind == "message_stop":
            return self.finish()
        if kind == "error":
            self.done = True
            error = payload.get("error") if isinstance(payload.get("error"), dict) else {}
            return [Error(str(error.get("message") or "The provider's stream reported an error."))]
        return []  # ping

    def finish(self) -> list[internal.StreamEvent]:
        if self.done:
            return []
        self.done = True
        out: list[internal.StreamEvent] = [] if self.started else [Start("", "", self.usage)]
        out.extend(PartStop(i) for i in sorted(self.open))
        self.open.clear()
        return [*out, Finish(self.stop, self.usage), Done()]


def _delta(index: int, delta: Any) -> list[internal.StreamEvent]:
    kind = delta.get("type") if isinstance(delta, dict) else None
    kind = kind if isinstance(kind, str) else None  # junk from upstream must not break the relay
    field = {"text_delta": "text", "thinking_delta": "thinking", "input_json_delta": "partial_json"}
    if kind in field and isinstance(text := delta.get(field[kind]), str) and text:
        return [PartDelta(index, text)]
    if kind == "signature_delta" and isinstance(signature := delta.get("signature"), str):
        return [PartDelta(index, signature=signature)]
    return []


class StreamWriter:
    """Internal stream events written as Anthropic's events, `event:` lines included."""

    def __init__(self, request: internal.Request, error: Any) -> None:
        self.stream_error = error  # the shape's SSE error event
        self.blocks: dict[int, tuple[int, str]] = {}  # internal index -> (ours, part kind)
        self.usage = Usage()
        self.started = self.done = False

    def write(self, event: internal.StreamEvent) -> list[bytes]:
        if self.done:
            return []
        if isinstance(event, Start):
            self.started, self.usage = True, event.usage
            return [self._start(event.id, event.model)]
        out = [] if self.started else [self._start("", "")]
        self.started = True
        if isinstance(event, PartStart):
            kind = type(event.part).__name__
            self.blocks[event.index] = (ours := len(self.blocks), kind)
            block = _block(event.part)
            if isinstance(event.part, ToolCall):
                block["input"] = {}
            start = {"type": "content_block_start", "index": ours, "content_block": block}
            out.append(_event("content_block_start", start))
        elif isinstance(event, PartDelta) and event.index in self.blocks:
            out.append(self._delta(event))
        elif isinstance(event, PartStop) and event.index in self.blocks:
            stop = {"type": "content_block_stop", "index": self.blocks[event.index][0]}
            out.append(_event("content_block_stop", stop))
        elif isinstance(event, Finish):
            delta = {"stop_reason": event.stop, "stop_sequence": None}
            final = {"type": "message_delta", "delta": delta, "usage": usage_out(event.usage)}
            out.append(_event("message_delta", final))
        elif isinstance(event, Done):
            self.done = True
            out.append(_event("message_stop", {"type": "message_stop"}))
        elif isinstance(event, Error):
            self.done = True
            out.append(self.stream_error(event.message))
        return out

    def finish(self) -> list[bytes]:
        if self.done:
            return []
        return [*self.write(Finish("end_turn", self.usage)), *self.write(Done())]

    def _start(self, id_: str, model: str) -> bytes:
        message = {
            "id": "msg_" + id_,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {**usage_out(self.usage), "output_tokens": 0},
        }
        return _event("message_start", {"type": "message_start", "message": message})

    def _delta(self, event: PartDelta) -> bytes:
        ours, kind = self.blocks[event.index]
        if event.signature is not None:
            delta = {"type": "signature_delta", "signature": event.signature}
        elif kind == "Text":
            delta = {"type": "text_delta", "text": event.text}
        elif kind == "Reasoning":
            delta = {"type": "thinking_delta", "thinking": event.text}
        else:
            delta = {"type": "input_json_delta", "partial_json": event.text}
        body = {"type": "content_block_delta", "index": ours, "delta": delta}
        return _event("content_block_delta", body)


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
