"""Chat completions and their chunk streams ↔ the internal form.

Completion: https://platform.openai.com/docs/api-reference/chat/object
Chunks:     https://platform.openai.com/docs/api-reference/chat-streaming
Usage in OpenAI's terms: `prompt_tokens` INCLUDES `prompt_tokens_details.cached_tokens`.
Chat Completions never returns reasoning text, so reasoning parts are left out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from analytics.usage import Usage
from gateway.shapes import internal
from gateway.shapes.base import token_count
from gateway.shapes.internal import (
    Done,
    Error,
    Finish,
    PartDelta,
    PartStart,
    PartStop,
    Response,
    Start,
    Text,
    ToolCall,
)
from gateway.shapes.reading import listed
from gateway.sse import SSEEvent, load_json

FINISH_FOR_STOP = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# Chat does not say whether `stop` was a stop sequence, so it reads as end_turn.
STOP_FOR_FINISH: dict[str, internal.StopReason] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
DONE = b"data: [DONE]\n\n"


def read_usage(usage: Mapping[str, Any]) -> Usage:
    prompt_details = usage.get("prompt_tokens_details")
    if not isinstance(prompt_details, Mapping):
        prompt_details = {}
    completion_details = usage.get("completion_tokens_details")
    if not isinstance(completion_details, Mapping):
        completion_details = {}
    return Usage(
        input_tokens=token_count(usage.get("prompt_tokens")),
        output_tokens=token_count(usage.get("completion_tokens")),
        cache_read_tokens=token_count(prompt_details.get("cached_tokens")),
        cache_write_tokens=token_count(prompt_details.get("cache_write_tokens")),
        reasoning_tokens=token_count(completion_details.get("reasoning_tokens")),
    )


def usage_out(usage: Usage) -> dict[str, Any]:
    out = {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens},
    }
    if usage.reasoning_tokens:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return out


# ---- whole answers -----------------------------------------------------------------------


def response_to_internal(body: dict[str, Any]) -> Response:
    """The first choice: the gateway never asks for more than one."""
    choices = body.get("choices") if isinstance(body.get("choices"), list) else []
    choice = choices[0] if choices and isinstance(choices[0], dict) else {}
    reply = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    parts: list[Text | ToolCall | internal.Reasoning] = []
    text = reply.get("content") or reply.get("refusal")
    if isinstance(text, str) and text:
        parts.append(Text(text))
    for call in listed(reply.get("tool_calls")):
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            arguments = function.get("arguments")
            arguments = arguments if isinstance(arguments, str) else "{}"
            parts.append(ToolCall(str(call.get("id", "")), str(function.get("name")), arguments))
    usage = body.get("usage")
    return Response(
        id=str(body.get("id", "")).removeprefix("chatcmpl-"),
        model=str(body.get("model", "")),
        parts=parts,
        stop=STOP_FOR_FINISH.get(str(choice.get("finish_reason")), "end_turn"),
        usage=read_usage(usage) if isinstance(usage, dict) else Usage(),
    )


def response_from_internal(response: Response, request: internal.Request) -> dict[str, Any]:
    texts = [p.text for p in response.parts if isinstance(p, Text)]
    calls = [p for p in response.parts if isinstance(p, ToolCall)]
    reply: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    reply["refusal"] = None
    if calls:
        reply["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in calls
        ]
    finish = FINISH_FOR_STOP.get(response.stop, "stop")
    return {
        "id": "chatcmpl-" + response.id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": response.model,
        "choices": [{"index": 0, "message": reply, "logprobs": None, "finish_reason": finish}],
        "usage": usage_out(response.usage),
    }


# ---- streams -----------------------------------------------------------------------------


class StreamReader:
    """Chunks read into blocks: text and each tool call become parts. The finish reason
    comes before the usage chunk (the gateway always asks for usage), so `Finish`
    waits for `[DONE]`."""

    def __init__(self) -> None:
        self.usage = Usage()
        self.stop: internal.StopReason = "end_turn"
        self.index = -1  # the open part, if any
        self.open: str | int | None = None  # "text", or the tool_calls index
        self.started = self.done = False

    def feed(self, event: SSEEvent) -> list[internal.StreamEvent]:
        if self.done:
            return []
        if event.data.strip() == "[DONE]":
            return self.finish()
        payload = load_json(event.data)
        if not isinstance(payload, dict):
            return []
        if "error" in payload and "choices" not in payload:
            self.done = True
            error = payload.get("error") if isinstance(payload.get("error"), dict) else {}
            return [Error(str(error.get("message") or "The provider's stream reported an error."))]
        out = self._start(payload)
        if isinstance(payload.get("usage"), dict):
            self.usage = read_usage(payload["usage"])
        for choice in listed(payload.get("choices")):
            if not isinstance(choice, dict):
                continue
            if isinstance(delta := choice.get("delta"), dict):
                out.extend(self._delta(delta))
            if choice.get("finish_reason"):
                self.stop = STOP_FOR_FINISH.get(str(choice["finish_reason"]), "end_turn")
        return out

    def finish(self) -> list[internal.StreamEvent]:
        if self.done:
            return []
        self.done = True
        return [*self._start({}), *self._close(), Finish(self.stop, self.usage), Done()]

    def _start(self, payload: dict[str, Any]) -> list[internal.StreamEvent]:
        if self.started:
            return []
        self.started = True
        id_ = str(payload.get("id", "")).removeprefix("chatcmpl-")
        return [Start(id_, str(payload.get("model") or ""), Usage())]

    def _delta(self, delta: dict[str, Any]) -> list[internal.StreamEvent]:
        out: list[internal.StreamEvent] = []
        text = delta.get("content") or delta.get("refusal")
        if isinstance(text, str) and text:
            if self.open != "text":
                out.extend(self._open("text", Text("")))
            out.append(PartDelta(self.index, text))
        for call in listed(delta.get("tool_calls")):
            if not isinstance(call, dict):
                continue
            function = call.get("function") if isinstance(call.get("function"), dict) else {}
            which = call.get("index", 0)
            if self.open != which or call.get("id"):
                name = str(function.get("name") or "")
                out.extend(self._open(which, ToolCall(str(call.get("id") or ""), name, "")))
            if isinstance(arguments := function.get("arguments"), str) and arguments:
                out.append(PartDelta(self.index, arguments))
        return out

    def _open(self, which: str | int, part: Text | ToolCall) -> list[internal.StreamEvent]:
        out = self._close()
        self.index += 1
        self.open = which
        return [*out, PartStart(self.index, part)]

    def _close(self) -> list[internal.StreamEvent]:
        if self.open is None:
            return []
        self.open = None
        return [PartStop(self.index)]


class StreamWriter:
    """Internal stream events written as `chat.completion.chunk`s, `[DONE]` last. The
    usage chunk (`choices: []`) is sent only when the caller asked with include_usage."""

    def __init__(self, request: internal.Request, error: Callable[[str], bytes]) -> None:
        self.stream_error = error
        self.include_usage = request.stream_usage
        self.base: dict[str, Any] = {"id": "chatcmpl-", "object": "chat.completion.chunk"}
        self.base |= {"created": int(time.time()), "model": request.model}
        if self.include_usage:
            self.base["usage"] = None
        self.tools: dict[int, int] = {}  # internal part index -> tool_calls index
        self.texts: set[int] = set()  # internal indices of text parts
        self.usage = Usage()
        self.done = False

    def write(self, event: internal.StreamEvent) -> list[bytes]:
        if self.done:
            return []
        if isinstance(event, Start):
            self.base["id"] = "chatcmpl-" + event.id
            self.base["model"] = event.model or self.base["model"]
            self.usage = event.usage
            return [self._chunk({"role": "assistant", "content": ""})]
        if isinstance(event, PartStart) and isinstance(event.part, ToolCall):
            index = self.tools[event.index] = len(self.tools)
            function = {"name": event.part.name, "arguments": ""}
            call = {"index": index, "id": event.part.id, "type": "function", "function": function}
            return [self._chunk({"tool_calls": [call]})]
        if isinstance(event, PartStart) and isinstance(event.part, Text):
            self.texts.add(event.index)
            return []
        if isinstance(event, PartDelta) and event.text:
            if event.index in self.tools:
                call = {"index": self.tools[event.index], "function": {"arguments": event.text}}
                return [self._chunk({"tool_calls": [call]})]
            if event.index in self.texts:
                return [self._chunk({"content": event.text})]
            return []  # reasoning: Chat Completions never streams it
        if isinstance(event, Finish):
            self.usage = event.usage
            return [self._chunk({}, FINISH_FOR_STOP.get(event.stop, "stop"))]
        if isinstance(event, Done):
            return self._end()
        if isinstance(event, Error):
            self.done = True
            return [self.stream_error(event.message)]
        return []

    def finish(self) -> list[bytes]:
        return [] if self.done else self._end()

    def _end(self) -> list[bytes]:
        self.done = True
        out = []
        if self.include_usage:
            last = {**self.base, "choices": [], "usage": usage_out(self.usage)}
            out.append(b"data: " + orjson.dumps(last) + b"\n\n")
        out.append(DONE)
        return out

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return b"data: " + orjson.dumps({**self.base, "choices": [choice]}) + b"\n\n"
