"""Streams, event by event: `ToOpenAIChunks` (Anthropic upstream, OpenAI caller) and
`ToAnthropicEvents` (OpenAI upstream, Anthropic caller).

Anthropic streaming: https://docs.anthropic.com/en/docs/build-with-claude/streaming
OpenAI chunks:       https://platform.openai.com/docs/api-reference/chat-streaming

Each translator takes parsed upstream events through `feed()` and returns the bytes
for the caller; `finish()` returns whatever must still close the stream (nothing if
the upstream closed it properly). Neither does I/O.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.shapes import Shape
from gateway.sse import SSEEvent, load_json
from gateway.translate.errors import stream_error_data
from gateway.translate.responses import (
    FINISH_FOR_STOP,
    STOP_FOR_FINISH,
    anthropic_usage,
    completion_id,
    message_id,
    openai_usage,
)

DONE = b"data: [DONE]\n\n"


class ToOpenAIChunks:
    """Anthropic message events → `chat.completion.chunk`s, `[DONE]` last. The usage
    chunk (`choices: []`) is sent only when the client asked with include_usage."""

    def __init__(self, *, model: str, created: int, include_usage: bool) -> None:
        self.include_usage = include_usage
        self.base: dict[str, Any] = {"id": "chatcmpl-", "object": "chat.completion.chunk"}
        self.base |= {"created": created, "model": model}
        if include_usage:
            self.base["usage"] = None
        self.usage: dict[str, Any] = {}
        self.tools: dict[int, int] = {}  # Anthropic block index → OpenAI tool_calls index
        self.done = False

    def feed(self, event: SSEEvent) -> list[bytes]:
        payload = load_json(event.data)
        if not isinstance(payload, dict) or self.done:
            return []
        kind = payload.get("type")
        if kind == "message_start":
            message = payload.get("message") if isinstance(payload.get("message"), dict) else {}
            self.base["id"] = completion_id(str(message.get("id", "")))
            self.base["model"] = message.get("model") or self.base["model"]
            self.usage = dict(message.get("usage") or {})
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = payload.get("content_block") or {}
            if block.get("type") != "tool_use":
                return []
            index = self.tools[payload.get("index", 0)] = len(self.tools)
            function = {"name": block.get("name"), "arguments": ""}
            call = {"index": index, "id": block.get("id"), "type": "function", "function": function}
            return [self._chunk({"tool_calls": [call]})]
        if kind == "content_block_delta":
            return self._delta(payload)
        if kind == "message_delta":
            self.usage |= {k: v for k, v in (payload.get("usage") or {}).items() if v is not None}
            stop = (payload.get("delta") or {}).get("stop_reason")
            finish = FINISH_FOR_STOP.get(stop or "end_turn", "stop")
            return [self._chunk({}, finish)]
        if kind == "message_stop":
            return self.finish()
        if kind == "error":
            self.done = True
            return [stream_error_data(payload, Shape.OPENAI)]
        return []  # ping, content_block_stop

    def finish(self) -> list[bytes]:
        if self.done:
            return []
        self.done = True
        out = []
        if self.include_usage:
            last = {**self.base, "choices": [], "usage": openai_usage(self.usage)}
            out.append(b"data: " + orjson.dumps(last) + b"\n\n")
        out.append(DONE)
        return out

    def _delta(self, payload: dict[str, Any]) -> list[bytes]:
        delta = payload.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return [self._chunk({"content": delta["text"]})]
        if kind == "input_json_delta" and delta.get("partial_json"):
            index = self.tools.get(payload.get("index", 0), 0)
            call = {"index": index, "function": {"arguments": delta["partial_json"]}}
            return [self._chunk({"tool_calls": [call]})]
        return []  # thinking and signatures: Chat Completions never streams reasoning text

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return b"data: " + orjson.dumps({**self.base, "choices": [choice]}) + b"\n\n"


class ToAnthropicEvents:
    """`chat.completion.chunk`s → Anthropic message events with `event:` lines.

    OpenAI sends the finish reason before the usage chunk (the gateway always asks
    for usage), so `message_delta` waits for `[DONE]` to carry the final usage."""

    def __init__(self, *, model: str) -> None:
        self.model = model
        self.started = False
        self.done = False
        self.index = -1  # the open Anthropic content block, if any
        self.open: str | int | None = None  # "text", or the OpenAI tool_calls index
        self.stop: str | None = None
        self.usage: dict[str, Any] = {}

    def feed(self, event: SSEEvent) -> list[bytes]:
        if self.done:
            return []
        if event.data.strip() == "[DONE]":
            return self.finish()
        payload = load_json(event.data)
        if not isinstance(payload, dict):
            return []
        if "error" in payload and "choices" not in payload:
            self.done = True
            return [stream_error_data(payload, Shape.ANTHROPIC)]
        out = self._start(payload)
        if isinstance(payload.get("usage"), dict):
            self.usage = payload["usage"]
        for choice in payload.get("choices") or []:
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if isinstance(delta, dict):
                out.extend(self._delta(delta))
            if isinstance(choice, dict) and choice.get("finish_reason"):
                self.stop = STOP_FOR_FINISH.get(choice["finish_reason"], "end_turn")
        return out

    def finish(self) -> list[bytes]:
        if self.done:
            return []
        out = self._start({})
        out.extend(self._close())
        delta = {"stop_reason": self.stop or "end_turn", "stop_sequence": None}
        usage = anthropic_usage(self.usage)
        final = {"type": "message_delta", "delta": delta, "usage": usage}
        out.append(_event("message_delta", final))
        out.append(_event("message_stop", {"type": "message_stop"}))
        self.done = True
        return out

    def _start(self, payload: dict[str, Any]) -> list[bytes]:
        if self.started:
            return []
        self.started = True
        message = {
            "id": message_id(str(payload.get("id", ""))),
            "type": "message",
            "role": "assistant",
            "model": payload.get("model") or self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [_event("message_start", {"type": "message_start", "message": message})]

    def _delta(self, delta: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        text = delta.get("content") or delta.get("refusal")
        if isinstance(text, str) and text:
            if self.open != "text":
                out.extend(self._open("text", {"type": "text", "text": ""}))
            body = {"type": "text_delta", "text": text}
            out.append(self._block_delta(body))
        for call in delta.get("tool_calls") or []:
            if not isinstance(call, dict):
                continue
            function = call.get("function") if isinstance(call.get("function"), dict) else {}
            index = call.get("index", 0)
            if self.open != index or call.get("id"):
                block = {"type": "tool_use", "id": call.get("id"), "name": function.get("name")}
                out.extend(self._open(index, {**block, "input": {}}))
            if function.get("arguments"):
                body = {"type": "input_json_delta", "partial_json": function["arguments"]}
                out.append(self._block_delta(body))
        return out

    def _open(self, which: str | int, block: dict[str, Any]) -> list[bytes]:
        out = self._close()
        self.index += 1
        self.open = which
        start = {"type": "content_block_start", "index": self.index, "content_block": block}
        out.append(_event("content_block_start", start))
        return out

    def _close(self) -> list[bytes]:
        if self.open is None:
            return []
        self.open = None
        return [_event("content_block_stop", {"type": "content_block_stop", "index": self.index})]

    def _block_delta(self, delta: dict[str, Any]) -> bytes:
        body = {"type": "content_block_delta", "index": self.index, "delta": delta}
        return _event("content_block_delta", body)


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
