"""A session's conversation in the internal form, and a turn's answer read back from it.

The server keeps the conversation: each turn is sent with every completed turn before it.
A cancelled or failed turn is not part of it (its question was never answered), and a
turn that ended in tool use must be followed by the results of every call it made.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from agent.models import AgentSession, Turn
from gateway.errors import bad_request
from gateway.shapes import internal


def tools_of(session: AgentSession) -> list[internal.Tool]:
    return [
        internal.Tool(t["name"], t.get("input_schema") or {"type": "object"},
                      t.get("description") or None)
        for t in session.tools
    ]  # fmt: skip


def history(turns: list[Turn]) -> list[internal.Message]:
    messages: list[internal.Message] = []
    for turn in turns:
        if turn.status != Turn.Status.COMPLETED:
            continue
        messages.append(asked(turn.user_message, turn.tool_results))
        parts: list[internal.Part] = [internal.Text(turn.text)] if turn.text else []
        parts += [
            internal.ToolCall(c["id"], c["name"], orjson.dumps(c["input"]).decode())
            for c in turn.tool_calls
        ]
        messages.append(internal.Message("assistant", parts or [internal.Text("")]))
    return messages


def asked(user_message: str | None, tool_results: list[dict] | None) -> internal.Message:
    if tool_results:
        return internal.Message("user", [
            internal.ToolResult(r["tool_use_id"], [internal.Text(r["content"])],
                                is_error=r.get("is_error", False))
            for r in tool_results
        ])  # fmt: skip
    return internal.Message("user", [internal.Text(user_message or "")])


def pending_tool_calls(turns: list[Turn]) -> list[dict]:
    """The tool calls the last completed turn is waiting on (none unless it ended in them)."""
    done = [t for t in turns if t.status == Turn.Status.COMPLETED]
    if not done or done[-1].stop_reason != "tool_use":
        return []
    return done[-1].tool_calls


def check_message(body: dict[str, Any], waiting: list[dict]) -> tuple[str | None, list | None]:
    """(user message, tool results) from a message body, or a 400 saying what is wrong."""
    content, results = body.get("content"), body.get("tool_results")
    if (content is None) == (results is None):
        raise bad_request("send either content (your message) or tool_results", param="content")
    if content is not None:
        if not isinstance(content, str) or not content.strip():
            raise bad_request("content must be a non-empty string", param="content")
        if waiting:
            names = ", ".join(f"{c['name']} ({c['id']})" for c in waiting)
            raise bad_request(f"the last turn is waiting for tool results: post tool_results "
                              f"for {names}", param="tool_results")  # fmt: skip
        return content, None
    if not waiting:
        raise bad_request("no tool calls are waiting for results in this session",
                          param="tool_results")  # fmt: skip
    if not isinstance(results, list) or not results:
        raise bad_request("tool_results must be a non-empty list", param="tool_results")
    checked = []
    for result in results:
        if not isinstance(result, dict) or not isinstance(result.get("tool_use_id"), str):
            raise bad_request("each tool result needs a tool_use_id", param="tool_results")
        output = result.get("content", "")
        if not isinstance(output, str):
            output = orjson.dumps(output).decode()
        is_error = result.get("is_error", False)
        if not isinstance(is_error, bool):
            raise bad_request("is_error must be true or false", param="tool_results")
        checked.append({"tool_use_id": result["tool_use_id"], "content": output,
                        "is_error": is_error})  # fmt: skip
    wanted = {c["id"] for c in waiting}
    given = [r["tool_use_id"] for r in checked]
    if sorted(given) != sorted(wanted):
        raise bad_request(f"tool_results must answer each waiting call once: "
                          f"{', '.join(sorted(wanted))}", param="tool_results")  # fmt: skip
    return None, checked


@dataclass
class Answer:
    """A turn's answer, read from internal stream events as they arrive."""

    text: str = ""
    tool_calls: list[dict] = field(default_factory=list)
    stop_reason: str = ""
    error: str = ""
    parts: dict[int, internal.Text | internal.ToolCall | internal.Reasoning] = field(
        default_factory=dict
    )

    def read(self, event: internal.StreamEvent) -> tuple[str, Any] | None:
        """The client's event for `event`, if any: ("text", delta) or ("tool_use", call)."""
        if isinstance(event, internal.PartStart):
            self.parts[event.index] = event.part
            if isinstance(event.part, internal.Text) and event.part.text:
                self.text += event.part.text
                return "text", event.part.text
        elif isinstance(event, internal.PartDelta):
            part = self.parts.get(event.index)
            if isinstance(part, internal.Text) and event.text:
                part.text += event.text
                self.text += event.text
                return "text", event.text
            if isinstance(part, internal.ToolCall):
                part.arguments += event.text
        elif isinstance(event, internal.PartStop):
            part = self.parts.get(event.index)
            if isinstance(part, internal.ToolCall):
                call = {"id": part.id, "name": part.name, "input": tool_input(part.arguments)}
                self.tool_calls.append(call)
                return "tool_use", call
        elif isinstance(event, internal.Finish):
            self.stop_reason = event.stop
        elif isinstance(event, internal.Error):
            self.error = event.message
        return None


def tool_input(arguments: str) -> object:
    """A tool call's arguments (JSON text in the internal form) as the object they are."""
    try:
        return orjson.loads(arguments) if arguments else {}
    except orjson.JSONDecodeError:
        return {"_raw": arguments}
