"""What the mock model says, independent of the wire shape.

Replies are a pure function of the prompt, so a streamed and a non-streamed call of the same
request produce the same text and the same token counts. One streamed piece is one output token.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

TOOL_DIRECTIVE = re.compile(r"\[\[tool(?::([\w.-]+)(?:\s+(\{.*?\}))?)?\s*\]\]", re.S)
ANY_DIRECTIVE = re.compile(r"\[\[(?:tool|fault)\b.*?\]\]", re.S)
WORD = re.compile(r"\s*\S+")
ANY_TOOL = "*"  # tool names match ^[a-zA-Z0-9_-]+$, so "*" cannot collide with one
ARGS_PIECE = 8  # characters of tool-call JSON per streamed piece
TOOL_RESULT_ECHO = 200


@dataclass(slots=True)
class Prompt:
    model: str
    last_user_text: str = ""
    tool_result: str | None = None  # text of the tool result the last message carries
    tools: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (name, JSON schema)
    forced_tool: str | None = None  # a tool name, ANY_TOOL, or None when the model may choose
    max_tokens: int | None = None
    stop_sequences: list[str] = field(default_factory=list)
    thinking: bool = False
    # Structured output: the JSON schema the answer must match ({}: any JSON object).
    answer_schema: dict[str, Any] | None = None


@dataclass(slots=True)
class ToolCall:
    name: str
    arguments: Any
    pieces: list[str]  # the arguments' JSON, split for streaming


@dataclass(slots=True)
class Reply:
    thinking: list[str]
    text: list[str]
    tool: ToolCall | None
    stop: str  # "end" | "max_tokens" | "stop_sequence" | "tool_use"
    stop_sequence: str | None = None

    @property
    def output_tokens(self) -> int:
        tool_pieces = len(self.tool.pieces) if self.tool else 0
        return len(self.thinking) + len(self.text) + tool_pieces


def words(text: str) -> list[str]:
    """Split into word-sized pieces whose concatenation is exactly `text`."""
    pieces = WORD.findall(text)
    rest = text[sum(map(len, pieces)) :]
    if rest:
        pieces.append(rest)
    return pieces


def compose(prompt: Prompt) -> Reply:
    said = " ".join(ANY_DIRECTIVE.sub("", prompt.last_user_text).split())
    thinking = words(f"The user said {said[:40]!r}. A short, friendly answer will do.")
    thinking = thinking if prompt.thinking else []
    budget = prompt.max_tokens
    if budget is not None:
        thinking = thinking[: max(budget, 0)]
        budget -= len(thinking)
    if tool := _tool_call(prompt):
        return Reply(thinking, [], tool, "tool_use")
    if prompt.tool_result is not None:
        text = f"Tool said: {prompt.tool_result[:TOOL_RESULT_ECHO]}"
    else:
        text = f"Hello from mock {prompt.model}. You said: {said[:40]}"
    if prompt.answer_schema is not None:
        return _structured(prompt.answer_schema, text, thinking, budget)
    stop, stop_sequence = "end", None
    hits = [(text.find(s), s) for s in prompt.stop_sequences if s and s in text]
    if hits:
        at, stop_sequence = min(hits)
        text, stop = text[:at], "stop_sequence"
    pieces = words(text)
    if budget is not None and len(pieces) > budget:
        pieces, stop, stop_sequence = pieces[: max(budget, 0)], "max_tokens", None
    return Reply(thinking, pieces, None, stop, stop_sequence)


def _structured(
    schema: dict[str, Any], text: str, thinking: list[str], budget: int | None
) -> Reply:
    """JSON matching `schema` (the plain answer under "reply" when any object will do),
    streamed in pieces as tool arguments are."""
    value = _arguments_for(schema) if schema else {"reply": text}
    if not isinstance(value, dict) and schema.get("type") in (None, "object"):
        value = {}
    encoded = orjson.dumps(value).decode()
    pieces = [encoded[i : i + ARGS_PIECE] for i in range(0, len(encoded), ARGS_PIECE)]
    if budget is not None and len(pieces) > budget:
        return Reply(thinking, pieces[: max(budget, 0)], None, "max_tokens")
    return Reply(thinking, pieces, None, "end")


def _tool_call(prompt: Prompt) -> ToolCall | None:
    # After a tool result the mock always answers in text, so agent loops terminate.
    if not prompt.tools or prompt.tool_result is not None:
        return None
    match = TOOL_DIRECTIVE.search(prompt.last_user_text)
    if match is None and prompt.forced_tool is None:
        return None
    schemas = dict(prompt.tools)
    name = match[1] if match and match[1] else prompt.forced_tool
    if not isinstance(name, str) or not name or name == ANY_TOOL:  # junk names pick any tool
        name = prompt.tools[0][0]
    arguments = _arguments_for(schemas.get(name, {}))
    if not isinstance(arguments, dict):  # tool input is always an object
        arguments = {}
    if match and match[2]:
        # A typo in a test's directive falls back to the schema-built arguments.
        with contextlib.suppress(orjson.JSONDecodeError):
            arguments = orjson.loads(match[2])
    encoded = orjson.dumps(arguments).decode()
    pieces = [encoded[i : i + ARGS_PIECE] for i in range(0, len(encoded), ARGS_PIECE)]
    return ToolCall(name, arguments, pieces)


def _arguments_for(schema: Any) -> Any:
    """The smallest value satisfying the required part of a JSON schema."""
    if not isinstance(schema, dict):
        return "mock"
    if isinstance(enum := schema.get("enum"), list) and enum:
        return enum[0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        required = schema.get("required")
        required = (
            [name for name in required if isinstance(name, str)]
            if isinstance(required, list)
            else []
        )
        return {name: _arguments_for(properties.get(name, {})) for name in required}
    if not isinstance(kind, str):  # an invalid schema: a real provider would refuse it
        return "mock"
    return {"integer": 1, "number": 1, "boolean": True, "array": [], "null": None}.get(kind, "mock")
