"""Responses API streams to and from internal stream events.

https://platform.openai.com/docs/api-reference/responses-streaming

The Writer emits the full semantic sequence a Responses client expects, each event
with its `sequence_number`: response.created, response.in_progress; per output item
output_item.added, then for a message content_part.added, output_text.delta...,
output_text.done, content_part.done; for reasoning reasoning_summary_part.added,
reasoning_summary_text.delta..., .done, reasoning_summary_part.done; for a function
call function_call_arguments.delta..., .done; then output_item.done; and at the end
response.completed (response.incomplete when the output limit was hit), carrying the
whole response with its usage, built by answers.from_internal exactly as the
unstreamed answer is. A provider's error mid-stream becomes an `error` event and
response.failed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from analytics.usage import Usage
from gateway.shapes import internal
from gateway.shapes.openai_responses import answers
from gateway.sse import SSEEvent, load_json

TERMINAL = ("response.completed", "response.incomplete", "response.failed")
# Deltas of a part the Reader numbered: message text (per content part), reasoning
# summary and function arguments (per item, content index 0).
DELTAS = frozenset(
    {
        "response.output_text.delta",
        "response.refusal.delta",
        "response.reasoning_summary_text.delta",
        "response.function_call_arguments.delta",
    }
)


# ---- the caller's stream -----------------------------------------------------------------


@dataclass(slots=True)
class _Open:
    """An output item being written: its output index and what it has so far."""

    index: int
    part: internal.Text | internal.ToolCall | internal.Reasoning
    summary_open: bool = False


class Writer:
    def __init__(self, request: internal.Request) -> None:
        self.request = request
        self.namespaces = answers.namespaces_of(request)
        self.sequence = 0
        self.provider_id = ""
        self.id = answers.response_id("")
        self.model = request.model
        self.created_at = int(time.time())
        self.parts: list[internal.Text | internal.ToolCall | internal.Reasoning] = []
        self.open: dict[int, _Open] = {}  # by the internal part index
        self.stop: internal.StopReason = "end_turn"
        self.usage = Usage()
        self.ended = False

    def write(self, event: internal.StreamEvent) -> list[bytes]:
        if self.ended:
            return []
        if isinstance(event, internal.Start):
            self.provider_id, self.model = event.id, event.model or self.model
            self.id = answers.response_id(event.id)
            self.usage = event.usage
            head = self._envelope(None)
            return [
                self._emit("response.created", response=head),
                self._emit("response.in_progress", response=head),
            ]
        if isinstance(event, internal.PartStart):
            return self._start(event)
        if isinstance(event, internal.PartDelta):
            return self._delta(event)
        if isinstance(event, internal.PartStop):
            return self._stop(event.index)
        if isinstance(event, internal.Finish):
            self.stop, self.usage = event.stop, event.usage
            return []
        if isinstance(event, internal.Error):
            return self._fail(event.message)
        return self._complete()  # Done

    def finish(self) -> list[bytes]:
        if self.ended:
            return []
        return self._fail("The provider's stream ended before the response was complete.")

    # -- items ---------------------------------------------------------------------------

    def _start(self, event: internal.PartStart) -> list[bytes]:
        out = self._stop_all() if event.index in self.open else []
        part = _fresh(event.part)
        opened = self.open[event.index] = _Open(len(self.parts), part)
        self.parts.append(part)
        item = answers.output_item(self.id, opened.index, part, self.namespaces, done=False)
        out.append(self._emit("response.output_item.added", output_index=opened.index, item=item))
        if isinstance(part, internal.Text):
            out.append(
                self._emit(
                    "response.content_part.added",
                    **self._at(opened),
                    content_index=0,
                    part=answers.output_text(""),
                )
            )
        return out

    def _delta(self, event: internal.PartDelta) -> list[bytes]:
        opened = self.open.get(event.index)
        if opened is None:
            return []
        part, at = opened.part, self._at(opened)
        if isinstance(part, internal.Text):
            part.text += event.text
            return [
                self._emit(
                    "response.output_text.delta",
                    **at,
                    content_index=0,
                    delta=event.text,
                    logprobs=[],
                )
            ]
        if isinstance(part, internal.ToolCall):
            part.arguments += event.text
            return [self._emit("response.function_call_arguments.delta", **at, delta=event.text)]
        out = []
        if event.signature is not None:
            part.signature = (part.signature or "") + event.signature
        if event.text:
            if not opened.summary_open:
                opened.summary_open = True
                out.append(
                    self._emit(
                        "response.reasoning_summary_part.added",
                        **at,
                        summary_index=0,
                        part=answers.summary_text(""),
                    )
                )
            part.text += event.text
            out.append(
                self._emit(
                    "response.reasoning_summary_text.delta", **at, summary_index=0, delta=event.text
                )
            )
        return out

    def _stop(self, index: int) -> list[bytes]:
        opened = self.open.pop(index, None)
        if opened is None:
            return []
        part, at, out = opened.part, self._at(opened), []
        if isinstance(part, internal.Text):
            out.append(
                self._emit(
                    "response.output_text.done", **at, content_index=0, text=part.text, logprobs=[]
                )
            )
            out.append(
                self._emit(
                    "response.content_part.done",
                    **at,
                    content_index=0,
                    part=answers.output_text(part.text),
                )
            )
        elif isinstance(part, internal.ToolCall):
            out.append(
                self._emit("response.function_call_arguments.done", **at, arguments=part.arguments)
            )
        elif opened.summary_open:
            out.append(
                self._emit(
                    "response.reasoning_summary_text.done", **at, summary_index=0, text=part.text
                )
            )
            out.append(
                self._emit(
                    "response.reasoning_summary_part.done",
                    **at,
                    summary_index=0,
                    part=answers.summary_text(part.text),
                )
            )
        item = answers.output_item(self.id, opened.index, part, self.namespaces)
        out.append(self._emit("response.output_item.done", output_index=opened.index, item=item))
        return out

    def _stop_all(self) -> list[bytes]:
        return [data for index in list(self.open) for data in self._stop(index)]

    # -- the end -------------------------------------------------------------------------

    def _complete(self) -> list[bytes]:
        out = self._stop_all()
        self.ended = True
        response = answers.from_internal(
            internal.Response(self.provider_id, self.model, self.parts, self.stop, self.usage),
            self.request,
        )
        response["created_at"] = self.created_at
        kind = "response.completed" if response["status"] == "completed" else "response.incomplete"
        out.append(self._emit(kind, response=response))
        return out

    def _fail(self, message: str) -> list[bytes]:
        out = self._stop_all()
        self.ended = True
        out.append(self._emit("error", code="server_error", message=message, param=None))
        failed = self._envelope(self.usage)
        failed |= {"status": "failed", "error": {"code": "server_error", "message": message}}
        out.append(self._emit("response.failed", response=failed))
        return out

    def _envelope(self, usage: Usage | None) -> dict[str, Any]:
        output = (
            None
            if usage is None
            else [
                answers.output_item(self.id, i, part, self.namespaces)
                for i, part in enumerate(self.parts)
            ]
        )
        return answers.envelope(
            self.id, self.model, self.request, output, None, usage, created_at=self.created_at
        )

    def _at(self, opened: _Open) -> dict[str, Any]:
        return {
            "item_id": answers.item_id(self.id, opened.index, opened.part),
            "output_index": opened.index,
        }

    def _emit(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _fresh(part: Any) -> internal.Text | internal.ToolCall | internal.Reasoning:
    """A copy to accumulate into (the event's own part is the caller's)."""
    if isinstance(part, internal.Text):
        return internal.Text(part.text)
    if isinstance(part, internal.ToolCall):
        return internal.ToolCall(part.id, part.name, part.arguments)
    return internal.Reasoning(part.text, part.signature, part.encrypted)


# ---- a provider's stream -----------------------------------------------------------------


@dataclass(slots=True)
class Reader:
    """A Responses provider's events as internal ones: one internal part per content part
    of a message, per reasoning item and per function call, numbered in order."""

    parts: dict[tuple[int, int], int] = field(default_factory=dict)  # (output, content) -> part
    started: bool = False
    finished: bool = False

    def feed(self, event: SSEEvent) -> list[internal.StreamEvent]:
        payload = load_json(event.data)
        if not isinstance(payload, dict) or not isinstance(kind := payload.get("type"), str):
            return []  # garbage from upstream must not break the relay
        at = (_int(payload.get("output_index")), _int(payload.get("content_index")))
        item, delta = _dict(payload.get("item")), payload.get("delta")
        number = self.parts.get(at)
        if kind == "response.created":
            response = _dict(payload.get("response"))
            self.started = True
            rid = str(response.get("id", "")).removeprefix("resp_")
            usage = answers.usage_of(response.get("usage"))
            return [internal.Start(rid, str(response.get("model", "")), usage)]
        if kind == "response.output_item.added" and item.get("type") == "function_call":
            call = internal.ToolCall(str(item.get("call_id", "")), str(item.get("name", "")), "")
            return [internal.PartStart(self._number(at), call)]
        if kind == "response.output_item.added" and item.get("type") == "reasoning":
            return [internal.PartStart(self._number(at), internal.Reasoning())]
        if kind == "response.content_part.added":
            return [internal.PartStart(self._number(at), internal.Text(""))]
        if kind in DELTAS and number is not None and isinstance(delta, str):
            return [internal.PartDelta(number, delta)]
        if kind == "response.content_part.done" and number is not None:
            return [internal.PartStop(number)]
        items_with_parts = ("function_call", "reasoning")  # a message's parts stop on their own
        if kind == "response.output_item.done" and item.get("type") in items_with_parts:
            return [] if number is None else [internal.PartStop(number)]
        if kind in TERMINAL:
            return self._end(_dict(payload.get("response")))
        if kind == "error":
            return [internal.Error(str(payload.get("message", "The provider failed.")))]
        return []

    def finish(self) -> list[internal.StreamEvent]:
        if self.finished or not self.started:
            return []
        return [internal.Error("The provider's stream ended before the response completed.")]

    def _number(self, at: tuple[int, int]) -> int:
        number = self.parts[at] = len(self.parts)
        return number

    def _end(self, response: dict[str, Any]) -> list[internal.StreamEvent]:
        self.finished = True
        if response.get("status") == "failed":
            error = _dict(response.get("error"))
            return [
                internal.Error(str(error.get("message", "The response failed."))),
                internal.Done(),
            ]
        answer = answers.to_internal(response)
        return [internal.Finish(answer.stop, answer.usage), internal.Done()]


def _int(value: Any) -> int:
    return value if type(value) is int else 0


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
