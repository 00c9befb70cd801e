"""The internal form: one vocabulary for requests, answers and stream events that every
wire shape translates to and from.

A cross-shape call goes caller's shape → internal → provider's shape, and its answer
back the same way (gateway/crossing.py composes the two shape modules; there is no code
per pair of shapes). A same-shape call never enters this form: it stays a byte-for-byte
pass-through.

The form carries what has a real equivalent in every shape. A field the caller sent
that cannot be carried (`seed` for a Claude model, `n` > 1, a temperature above a
provider's range, ...) goes through `Unportable`: by default a 400 naming the field;
when the key's policy says drop, it is dropped and listed on the call
(`dropped_params`, the `x-metis-dropped-params` header), never silently.

Conventions, chosen to lose nothing in either direction:
- Messages are user or assistant turns; a tool's result is a `ToolResult` part of the
  user turn after the call (Anthropic's convention; Chat's `role: "tool"` messages and
  the Responses API's `function_call_output` items map onto it).
- Tool-call arguments are JSON text, as OpenAI carries them; Anthropic's `input` object
  is dumped to it and parsed back.
- Usage is `analytics.usage.Usage`: input includes cache reads and writes, output
  includes reasoning.
- Ids of answers are bare: a shape strips its own prefix when reading (`msg_`,
  `chatcmpl-`, `resp_`) and adds it when writing, so an id survives the trip.
- A message whose only part is one `Text` is written as a plain string where a shape
  allows both spellings (they mean the same).
- Streams are block-structured, as Anthropic's and the Responses API's are: a part
  starts, grows by deltas, stops. Chat Completions' chunk stream is read into blocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from analytics.usage import Usage
from gateway.errors import GatewayError, bad_request

__all__ = [
    "Done",
    "Error",
    "Finish",
    "Image",
    "Message",
    "OutputFormat",
    "Part",
    "PartDelta",
    "PartStart",
    "PartStop",
    "Reasoning",
    "Request",
    "Response",
    "Start",
    "StreamEvent",
    "Text",
    "Tool",
    "ToolCall",
    "ToolChoice",
    "ToolResult",
    "Unportable",
    "Usage",
]

# Why a turn ended, in Anthropic's words (the richest set); each shape maps its own.
StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use", "refusal"]
Effort = Literal["minimal", "low", "medium", "high"]


# ---- content parts -----------------------------------------------------------------------


@dataclass(slots=True)
class Text:
    text: str


@dataclass(slots=True)
class Image:
    """An image by URL, or inline as base64 `data` of `media_type`."""

    url: str | None = None
    media_type: str | None = None
    data: str | None = None


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text


@dataclass(slots=True)
class ToolResult:
    call_id: str
    content: list[Text | Image]
    is_error: bool = False


@dataclass(slots=True)
class Reasoning:
    """The model's reasoning. `text` is what a shape shows (Anthropic thinking, a
    Responses reasoning summary); `signature` is Anthropic's, and `encrypted` is opaque
    reasoning only the provider that made it can read back (Anthropic redacted
    thinking, OpenAI `encrypted_content`). Reasoning never crosses to another provider
    in a later turn: a shape drops what it cannot hand back."""

    text: str = ""
    signature: str | None = None
    encrypted: str | None = None


Part = Text | Image | ToolCall | ToolResult | Reasoning


@dataclass(slots=True)
class Message:
    role: Literal["user", "assistant"]
    parts: list[Part]


# ---- the request -------------------------------------------------------------------------


@dataclass(slots=True)
class Tool:
    name: str
    parameters: dict[str, Any]  # JSON schema of the arguments
    description: str | None = None
    strict: bool | None = None


@dataclass(slots=True)
class ToolChoice:
    mode: Literal["auto", "required", "none", "tool"]
    name: str | None = None  # with mode "tool"


@dataclass(slots=True)
class OutputFormat:
    """Structured output: `json_schema` (with `schema`) or any `json_object`."""

    kind: Literal["json_schema", "json_object"]
    schema: dict[str, Any] | None = None
    name: str | None = None
    strict: bool | None = None


@dataclass(slots=True)
class Request:
    model: str
    messages: list[Message]
    system: list[Text] = field(default_factory=list)
    max_output_tokens: int | None = None
    stream: bool = False
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] = field(default_factory=list)
    tools: list[Tool] = field(default_factory=list)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    # Reasoning: an effort (OpenAI) or a token budget (Anthropic); a shape that takes the
    # other one maps it. `reasoning_off` is an explicit "no reasoning".
    reasoning_effort: Effort | None = None
    reasoning_budget: int | None = None
    reasoning_off: bool = False
    output_format: OutputFormat | None = None
    user: str | None = None  # the end user's id (OpenAI `user`, Anthropic metadata.user_id)
    stream_usage: bool = False  # the caller asked for usage in its stream (Chat's include_usage)


# ---- the answer --------------------------------------------------------------------------


@dataclass(slots=True)
class Response:
    id: str
    model: str
    parts: list[Text | ToolCall | Reasoning]
    stop: StopReason = "end_turn"
    usage: Usage = field(default_factory=Usage)


# ---- stream events -----------------------------------------------------------------------


@dataclass(slots=True)
class Start:
    """The answer begins; `usage` holds what is known so far (usually the input)."""

    id: str
    model: str
    usage: Usage = field(default_factory=Usage)


@dataclass(slots=True)
class PartStart:
    """Part `index` begins: `Text("")`, `Reasoning()` or `ToolCall(id, name, "")`."""

    index: int
    part: Text | ToolCall | Reasoning


@dataclass(slots=True)
class PartDelta:
    """More of part `index`: text, reasoning text or argument JSON; or a signature."""

    index: int
    text: str = ""
    signature: str | None = None


@dataclass(slots=True)
class PartStop:
    index: int


@dataclass(slots=True)
class Finish:
    """Why the answer ended, and the whole call's usage (cumulative, not a delta)."""

    stop: StopReason
    usage: Usage


@dataclass(slots=True)
class Error:
    """The provider reported an error inside the stream."""

    message: str


@dataclass(slots=True)
class Done:
    """The stream ended properly."""


StreamEvent = Start | PartStart | PartDelta | PartStop | Finish | Error | Done


# ---- what cannot be carried --------------------------------------------------------------


class Unportable:
    """Where a field with no equivalent goes: a 400 naming it, or, when the caller's key
    allows dropping (`drop`), the list of dropped fields the call records.

    crossing.py makes one per call; `target` names what cannot take the field (the
    routed model). Fields are named as the caller spelled them: a caller's `to_internal`
    records its own names for internal fields it spells otherwise in `names` (Anthropic:
    `{"stop": "stop_sequences"}`), so the provider's `from_internal` can refuse a value
    by the internal name and the caller still reads its own."""

    def __init__(self, *, drop: bool = False, target: str = "the routed model") -> None:
        self.drop = drop
        self.target = target
        self.names: dict[str, str] = {}
        self.dropped: list[str] = []

    def field(self, name: str, target: str | None = None, what: str | None = None) -> None:
        """Refuse `name` (raises), or note it dropped. `what` says which use of the field,
        when not every use is unportable ("a temperature above 1")."""
        name = self.names.get(name, name)
        if not self.drop:
            raise cannot_carry(name, target or self.target, what)
        if name not in self.dropped:
            self.dropped.append(name)


def cannot_carry(name: str, target: str, what: str | None = None) -> GatewayError:
    detail = f" ({what})" if what else ""
    return bad_request(
        f"{name}{detail} cannot be translated faithfully for {target}; remove it, call a "
        f"model served in this endpoint's own shape, or ask the operator to let this key "
        f"drop unsupported parameters.",
        param=name,
    )
