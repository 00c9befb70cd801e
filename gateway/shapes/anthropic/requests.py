"""Anthropic Messages request bodies ↔ the internal form.

https://docs.anthropic.com/en/api/messages. Dropped on purpose, since they change only
cost or bookkeeping, not what the model is asked: `cache_control` (other providers
cache prefixes by themselves), `service_tier`, and reasoning handed back in earlier
assistant turns by another provider (only Anthropic reads its own thinking back).

Structured output for a model without `output_config.format` (gateway/shapes/anthropic/
models.py), and any `json_object` request (Claude has no JSON mode), is asked for with
a forced call of one more tool, `STRUCTURED_TOOL`, whose input schema is the wanted one;
answers.py turns that call back into the text answer the caller expects.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.errors import bad_request
from gateway.shapes import internal
from gateway.shapes.anthropic.models import takes_structured_outputs, thinks_adaptively
from gateway.shapes.internal import (
    Image,
    Message,
    OutputFormat,
    Reasoning,
    Request,
    Text,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
    Unportable,
    cannot_carry,
)
from gateway.shapes.reading import (
    arguments_object,
    as_bool,
    as_dict,
    as_list,
    as_number,
    as_str,
)

# Anthropic requires max_tokens; other shapes make it optional. 4096 is what the
# Anthropic docs' own examples use and fits every current Claude model.
DEFAULT_MAX_TOKENS = 4096
PASSED = frozenset(
    {"model", "messages", "system", "max_tokens", "stop_sequences", "stream", "temperature"}
    | {"top_p", "metadata", "tools", "tool_choice", "thinking", "service_tier"}
    | {"output_config", "output_format"}
)
# Internal fields Anthropic spells otherwise, for refusals in the caller's words.
NAMES = {
    "stop": "stop_sequences",
    "max_output_tokens": "max_tokens",
    "reasoning": "thinking",
    "user": "metadata.user_id",
    "output_format": "output_config.format",
    "parallel_tool_calls": "tool_choice.disable_parallel_tool_use",
}
CHOICE_MODES = {"auto": "auto", "any": "required", "none": "none", "tool": "tool"}
TOP_TEMPERATURE = 1
# An effort as a thinking budget, each inside the band Chat's EFFORT_FOR_BUDGET reads back.
BUDGET_FOR_EFFORT = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 24576}
MIN_BUDGET = 1024  # Anthropic's floor for budget_tokens
# Anthropic's efforts as OpenAI's, and back ("max" has no OpenAI counterpart above high).
EFFORT_FOR_LEVEL = {"low": "low", "medium": "medium", "high": "high", "max": "high"}
LEVEL_FOR_EFFORT = {"minimal": "low", "low": "low", "medium": "medium", "high": "high"}
STRUCTURED_TOOL = "metis_structured_output"  # reserved: never a caller's tool name
STRUCTURED_PROMPT = "Give your final answer by calling this tool: its input is the answer."


# ---- Anthropic in ------------------------------------------------------------------------


def to_internal(body: dict[str, Any], unportable: Unportable) -> Request:
    unportable.names.update(NAMES)
    for name in body:
        if name not in PASSED and body[name] is not None:
            unportable.field(name)
    request = Request(
        model=str(body.get("model")),
        messages=[
            _message(m, f"messages[{i}]", unportable) for i, m in enumerate(body["messages"])
        ],
        system=_system(body.get("system")),
        max_output_tokens=body["max_tokens"],
        stream=body.get("stream") is True,
        stream_usage=True,  # Anthropic streams always carry usage
    )
    if body.get("temperature") is not None:
        request.temperature = as_number(body["temperature"], "temperature")
    if body.get("top_p") is not None:
        request.top_p = as_number(body["top_p"], "top_p")
    if body.get("stop_sequences") is not None:
        stops = as_list(body["stop_sequences"], "stop_sequences")
        request.stop = [as_str(s, f"stop_sequences[{i}]") for i, s in enumerate(stops)]
    metadata = body.get("metadata")
    if metadata is not None and as_dict(metadata, "metadata").get("user_id") is not None:
        request.user = as_str(metadata["user_id"], "metadata.user_id")
    if body.get("tools") is not None:
        tools = as_list(body["tools"], "tools")
        request.tools = [_tool(t, f"tools[{i}]", unportable) for i, t in enumerate(tools)]
    if body.get("tool_choice") is not None:
        _tool_choice(request, body["tool_choice"], unportable)
    if body.get("output_format") is not None:  # the structured-outputs beta's spelling
        request.output_format = _format(body["output_format"], "output_format")
    config = body.get("output_config")
    if config is not None:
        _output_config(request, as_dict(config, "output_config"), unportable)
    if body.get("thinking") is not None:
        _thinking(request, body["thinking"], unportable)
    return request


def _output_config(request: Request, config: dict[str, Any], unportable: Unportable) -> None:
    for name in config:
        if name not in ("format", "effort") and config[name] is not None:
            unportable.field(f"output_config.{name}")
    if config.get("format") is not None:
        request.output_format = _format(config["format"], "output_config.format")
    if (effort := config.get("effort")) is not None:
        if not isinstance(effort, str) or effort not in EFFORT_FOR_LEVEL:
            raise bad_request("output_config.effort must be low, medium, high or max",
                              param="output_config.effort")  # fmt: skip
        request.reasoning_effort = EFFORT_FOR_LEVEL[effort]  # type: ignore[assignment]


def _format(value: Any, where: str) -> OutputFormat:
    value = as_dict(value, where)
    if value.get("type") != "json_schema":
        raise bad_request(f"{where}.type must be json_schema", param=f"{where}.type")
    return OutputFormat("json_schema", schema=as_dict(value.get("schema"), f"{where}.schema"))


def _system(system: Any) -> list[Text]:
    if system is None or isinstance(system, str):
        return [Text(system)] if system else []
    blocks = as_list(system, "system")
    out = []
    for i, block in enumerate(blocks):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise bad_request(f"system[{i}] must be a text block", param=f"system[{i}]")
        out.append(Text(as_str(block.get("text"), f"system[{i}].text", default="")))
    return out


def _message(message: Any, where: str, unportable: Unportable) -> Message:
    if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
        raise bad_request(f"{where}.role must be user or assistant", param=f"{where}.role")
    content = message.get("content")
    if isinstance(content, str):
        return Message(message["role"], [Text(content)])
    blocks = as_list(content, f"{where}.content")
    parts = [_part(block, f"{where}.content[{j}]", unportable) for j, block in enumerate(blocks)]
    return Message(message["role"], parts)


def _part(block: Any, where: str, unportable: Unportable) -> internal.Part:
    kind = block.get("type") if isinstance(block, dict) else None
    if kind == "text":
        return Text(as_str(block.get("text"), f"{where}.text", default=""))
    if kind == "image":
        return _image(block, where)
    if kind == "tool_use":
        arguments = orjson.dumps(block.get("input") or {}).decode()
        return ToolCall(str(block.get("id")), str(block.get("name")), arguments)
    if kind == "tool_result":
        return _tool_result(block, where, unportable)
    if kind == "thinking":
        text = as_str(block.get("thinking"), f"{where}.thinking", default="")
        return Reasoning(text, signature=block.get("signature"))
    if kind == "redacted_thinking":
        return Reasoning(encrypted=as_str(block.get("data"), f"{where}.data", default=""))
    # Content is never dropped: the model would be asked something else.
    raise cannot_carry(where, unportable.target, f"content blocks of type {kind!r}")


def _image(block: dict[str, Any], where: str) -> Image:
    source = block.get("source") if isinstance(block.get("source"), dict) else {}
    if source.get("type") == "base64":
        media_type = as_str(source.get("media_type"), f"{where}.source.media_type")
        return Image(media_type=media_type, data=as_str(source.get("data"), f"{where}.source"))
    if source.get("type") == "url":
        return Image(url=as_str(source.get("url"), f"{where}.source.url"))
    raise bad_request(f"{where}.source must be a base64 or url image", param=f"{where}.source")


def _tool_result(block: dict[str, Any], where: str, unportable: Unportable) -> ToolResult:
    content = block.get("content")
    parts: list[Text | Image] = []
    if isinstance(content, str):
        parts = [Text(content)]
    elif content is not None:
        for k, item in enumerate(as_list(content, f"{where}.content")):
            part = _part(item, f"{where}.content[{k}]", unportable)
            if not isinstance(part, (Text, Image)):
                at = f"{where}.content[{k}]"
                raise bad_request(f"{at} must be a text or image block", param=at)
            parts.append(part)
    is_error = block.get("is_error")
    return ToolResult(
        str(block.get("tool_use_id")),
        parts,
        is_error=as_bool(is_error, f"{where}.is_error") if is_error is not None else False,
    )


def _tool(tool: Any, where: str, unportable: Unportable) -> Tool:
    if not isinstance(tool, dict) or tool.get("type") not in (None, "custom"):
        # Server tools (web search, code execution, ...) run at Anthropic only.
        unportable.field(where, what="server tools are Anthropic's")
        return Tool("", {})
    schema = tool.get("input_schema")
    return Tool(
        name=as_str(tool.get("name"), f"{where}.name"),
        parameters=as_dict(schema, f"{where}.input_schema") if schema else {"type": "object"},
        description=tool.get("description") if isinstance(tool.get("description"), str) else None,
    )


def _tool_choice(request: Request, choice: Any, unportable: Unportable) -> None:
    choice = as_dict(choice, "tool_choice")
    kind = choice.get("type")
    mode = CHOICE_MODES.get(kind) if isinstance(kind, str) else None
    if mode is None:
        unportable.field("tool_choice", what=f"tool_choice of type {kind!r}")
        return
    name = as_str(choice.get("name"), "tool_choice.name") if mode == "tool" else None
    request.tool_choice = ToolChoice(mode, name)  # type: ignore[arg-type]
    if choice.get("disable_parallel_tool_use") is True:
        request.parallel_tool_calls = False


def _thinking(request: Request, thinking: Any, unportable: Unportable) -> None:
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind == "disabled":
        request.reasoning_off = True
        request.reasoning_effort = None
        return
    if kind == "adaptive":  # how much: output_config.effort, high by default
        request.reasoning_effort = request.reasoning_effort or "high"
        return
    budget = thinking.get("budget_tokens") if kind == "enabled" else None
    if type(budget) is not int:
        unportable.field("thinking", what="thinking with a budget_tokens")
        return
    if budget < 0:
        raise bad_request(
            "thinking.budget_tokens must not be negative", param="thinking.budget_tokens"
        )
    request.reasoning_budget = budget


# ---- Anthropic out -----------------------------------------------------------------------


def from_internal(request: Request, unportable: Unportable) -> dict[str, Any]:
    out: dict[str, Any] = {"model": request.model}
    if request.system:
        out["system"] = _text_or_blocks(request.system)
    out["messages"] = [_message_out(m) for m in request.messages]
    out["max_tokens"] = request.max_output_tokens or DEFAULT_MAX_TOKENS
    config: dict[str, Any] = {}
    if thinking := _thinking_out(request):
        out["thinking"] = thinking
        if request.max_output_tokens is None:  # room to think, and then to answer
            out["max_tokens"] = DEFAULT_MAX_TOKENS + thinking.get("budget_tokens", 0)
        if thinking["type"] == "adaptive":
            config["effort"] = LEVEL_FOR_EFFORT[request.reasoning_effort or "high"]
    if request.temperature is not None:
        if request.temperature > TOP_TEMPERATURE:
            unportable.field("temperature", what=f"a temperature above {TOP_TEMPERATURE}")
        else:
            out["temperature"] = request.temperature
    if request.top_p is not None:
        out["top_p"] = request.top_p
    if request.stop:
        out["stop_sequences"] = request.stop
    if request.stream:
        out["stream"] = True
    if request.user is not None:
        out["metadata"] = {"user_id": request.user}
    tools = [_tool_out(t) for t in request.tools]
    choice = _tool_choice_out(request.tool_choice, request.parallel_tool_calls)
    structured = request.output_format
    if structured and structured.kind == "json_schema" and takes_structured_outputs(request.model):
        config["format"] = {"type": "json_schema", "schema": structured.schema}
    elif structured:
        schema = structured.schema or {"type": "object"}
        tools.append({"name": STRUCTURED_TOOL, "description": STRUCTURED_PROMPT,
                      "input_schema": schema})  # fmt: skip
        choice = _structured_choice(choice, thinking=thinking is not None, own=bool(request.tools))
    if tools:
        out["tools"] = tools
    if choice is not None:
        out["tool_choice"] = choice
    if config:
        out["output_config"] = config
    return out


def _structured_choice(
    choice: dict[str, Any] | None, *, thinking: bool, own: bool
) -> dict[str, Any]:
    """The caller's tool choice with the structured-output tool added: forced when the
    caller's own tools are not to be used, any tool (the answer included) when they may
    be. Thinking allows neither, so the model is then only asked, through the tool's
    description."""
    kind = (choice or {}).get("type", "auto")
    if thinking:
        out = {"type": "auto"}
    elif kind == "none" or not own:
        out = {"type": "tool", "name": STRUCTURED_TOOL}
    elif kind == "auto":
        out = {"type": "any"}
    else:
        return choice or {"type": "any"}
    if choice and choice.get("disable_parallel_tool_use"):
        out["disable_parallel_tool_use"] = True
    return out


def _thinking_out(request: Request) -> dict[str, Any] | None:
    """Adaptive thinking for the models that take it; else a budget within the call's
    output limit, which covers it (as OpenAI's covers reasoning); a limit too small for
    Anthropic's minimum budget gets none."""
    if request.reasoning_off:
        return {"type": "disabled"}
    wants = request.reasoning_effort is not None or request.reasoning_budget is not None
    if wants and thinks_adaptively(request.model):
        return {"type": "adaptive"}
    budget = request.reasoning_budget
    if budget is None and request.reasoning_effort is not None:
        budget = BUDGET_FOR_EFFORT[request.reasoning_effort]
    if budget is None:
        return None
    if request.max_output_tokens is not None:
        budget = min(budget, request.max_output_tokens - 1)
    if budget < MIN_BUDGET:
        return None
    return {"type": "enabled", "budget_tokens": budget}


def _text_or_blocks(parts: list[Any]) -> Any:
    if len(parts) == 1 and isinstance(parts[0], Text):
        return parts[0].text
    return [_block(p) for p in parts]


def _message_out(message: Message) -> dict[str, Any]:
    # Only Claude's own reasoning goes back: thinking with its signature, or redacted
    # thinking's opaque data (the shapes carry `encrypted` only from Anthropic, packed into
    # a translated answer). Reasoning from another provider is dropped.
    parts = [
        p
        for p in message.parts
        if not isinstance(p, Reasoning) or p.signature or p.encrypted is not None
    ]
    return {"role": message.role, "content": _text_or_blocks(parts)}


def _block(part: internal.Part) -> dict[str, Any]:
    if isinstance(part, Text):
        return {"type": "text", "text": part.text}
    if isinstance(part, Image):
        if part.url is not None:
            return {"type": "image", "source": {"type": "url", "url": part.url}}
        source = {"type": "base64", "media_type": part.media_type, "data": part.data}
        return {"type": "image", "source": source}
    if isinstance(part, ToolCall):
        tool_use = {"type": "tool_use", "id": part.id, "name": part.name}
        return {**tool_use, "input": arguments_object(part.arguments)}
    if isinstance(part, ToolResult):
        result: dict[str, Any] = {"type": "tool_result", "tool_use_id": part.call_id}
        result["content"] = _text_or_blocks(part.content) if part.content else ""
        if part.is_error:
            result["is_error"] = True
        return result
    if part.encrypted is not None:
        return {"type": "redacted_thinking", "data": part.encrypted}
    return {"type": "thinking", "thinking": part.text, "signature": part.signature}


def _tool_out(tool: Tool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        out["description"] = tool.description
    out["input_schema"] = tool.parameters or {"type": "object", "properties": {}}
    return out


def _tool_choice_out(choice: ToolChoice | None, parallel: bool | None) -> dict[str, Any] | None:
    if choice is None:
        # Anthropic carries "no parallel calls" on tool_choice only.
        return {"type": "auto", "disable_parallel_tool_use": True} if parallel is False else None
    mode = {"required": "any"}.get(choice.mode, choice.mode)
    out: dict[str, Any] = {"type": mode}
    if mode == "tool":
        out["name"] = choice.name
    if parallel is False and mode != "none":
        out["disable_parallel_tool_use"] = True
    return out
