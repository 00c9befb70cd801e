"""Chat Completions request bodies ↔ the internal form.

https://platform.openai.com/docs/api-reference/chat/create. Dropped on purpose, since
they change only cost or bookkeeping, not what the model is asked: `store`,
`metadata`, `service_tier`, `image_url.detail`, `parallel_tool_calls: true` (the
default everywhere) and a function's `strict` flag.
"""

from __future__ import annotations

from typing import Any

from gateway.errors import bad_request
from gateway.shapes import internal
from gateway.shapes.internal import (
    Message,
    OutputFormat,
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
    arguments,
    as_dict,
    as_list,
    as_number,
    as_str,
    image_from_url,
    image_url,
    positive_int,
)

# Fields with no counterpart elsewhere: unportable unless they hold their default
# (an empty tuple: any value at all).
UNPORTABLE: dict[str, tuple[Any, ...]] = {
    "n": (1,),
    "logprobs": (False,),
    "top_logprobs": (0,),
    "logit_bias": ({},),
    "presence_penalty": (0, 0.0),
    "frequency_penalty": (0, 0.0),
    "seed": (),
    "audio": (),
    "modalities": (["text"],),
    "prediction": (),
    "web_search_options": (),
    "functions": (),
    "function_call": (),
}
PASSED = frozenset(
    {"model", "messages", "stream", "stream_options", "temperature", "top_p", "stop", "user"}
    | {"max_tokens", "max_completion_tokens", "tools", "tool_choice", "parallel_tool_calls"}
    | {"reasoning_effort", "response_format", "store", "metadata", "service_tier"}
)
NAMES = {
    "max_output_tokens": "max_completion_tokens",
    "reasoning": "reasoning_effort",
    "output_format": "response_format",
}
EFFORTS = ("minimal", "low", "medium", "high")
# An Anthropic thinking budget as an effort, by the lower bound of each band.
EFFORT_FOR_BUDGET = ((16384, "high"), (4096, "medium"), (0, "low"))
MAX_STOPS = 4


# ---- Chat Completions in -----------------------------------------------------------------


def to_internal(body: dict[str, Any], unportable: Unportable) -> Request:
    unportable.names.update(NAMES)
    for name, value in body.items():
        defaults = UNPORTABLE.get(name)
        if defaults is not None:
            if value is not None and value not in defaults:
                unportable.field(name)
        elif name not in PASSED:
            unportable.field(name)
    system, messages = _messages(body["messages"], unportable)
    request = Request(model=str(body.get("model")), messages=messages, system=system)
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if limit is not None:
        request.max_output_tokens = positive_int(limit, "max_completion_tokens")
    request.stream = body.get("stream") is True
    options = body.get("stream_options")
    request.stream_usage = isinstance(options, dict) and options.get("include_usage") is True
    if body.get("temperature") is not None:
        request.temperature = as_number(body["temperature"], "temperature")
    if body.get("top_p") is not None:
        request.top_p = as_number(body["top_p"], "top_p")
    stop = body.get("stop")
    if isinstance(stop, str):
        request.stop = [stop]
    elif stop is not None:
        request.stop = [as_str(s, f"stop[{i}]") for i, s in enumerate(as_list(stop, "stop"))]
    if body.get("user") is not None:
        request.user = as_str(body["user"], "user")
    if body.get("tools") is not None:
        tools = as_list(body["tools"], "tools")
        request.tools = [_tool(t, f"tools[{i}]", unportable) for i, t in enumerate(tools)]
    if body.get("tool_choice") is not None:
        request.tool_choice = _tool_choice(body["tool_choice"], unportable)
    if body.get("parallel_tool_calls") is False:
        request.parallel_tool_calls = False
    if (effort := body.get("reasoning_effort")) is not None:
        _effort(request, effort, unportable)
    if body.get("response_format") is not None:
        request.output_format = _output_format(as_dict(body["response_format"], "response_format"))
    return request


def _output_format(value: dict[str, Any]) -> OutputFormat | None:
    kind = value.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return OutputFormat("json_object")
    if kind != "json_schema":
        raise bad_request("response_format.type must be text, json_object or json_schema",
                          param="response_format.type")  # fmt: skip
    spec = as_dict(value.get("json_schema"), "response_format.json_schema")
    schema = spec.get("schema")
    return OutputFormat(
        "json_schema",
        schema=as_dict(schema, "response_format.json_schema.schema") if schema else {},
        name=spec.get("name") if isinstance(spec.get("name"), str) else None,
        strict=spec.get("strict") if isinstance(spec.get("strict"), bool) else None,
    )


def _messages(raw: list[Any], unportable: Unportable) -> tuple[list[Text], list[Message]]:
    """Leading system/developer messages become the system prompt; tool messages become
    tool results in a user turn (merged while nothing else comes between)."""
    system: list[Text] = []
    out: list[Message] = []
    for i, message in enumerate(raw):
        where = f"messages[{i}]"
        message = as_dict(message, where)
        role = message.get("role")
        if role in ("system", "developer"):
            if out:
                raise cannot_carry(where, unportable.target, "system messages after the first turn")
            system.extend(_texts(message.get("content"), f"{where}.content", unportable))
        elif role == "tool":
            result = _tool_result(message, where, unportable)
            if out and out[-1].role == "user" and _all_results(out[-1].parts):
                out[-1].parts.append(result)
            else:
                out.append(Message("user", [result]))
        elif role == "user":
            out.append(Message("user", _user(message, where, unportable)))
        elif role == "assistant":
            out.append(Message("assistant", _assistant(message, where, unportable)))
        else:
            raise cannot_carry(f"{where}.role", unportable.target, f"role {role!r}")
    return system, out


def _all_results(parts: list[internal.Part]) -> bool:
    return all(isinstance(p, ToolResult) for p in parts)


def _texts(content: Any, where: str, unportable: Unportable) -> list[Text]:
    if isinstance(content, str):
        return [Text(content)]
    out = []
    for k, part in enumerate(as_list(content, where)):
        if not isinstance(part, dict) or part.get("type") != "text":
            raise cannot_carry(f"{where}[{k}]", unportable.target, "only text parts here")
        out.append(Text(as_str(part.get("text"), f"{where}[{k}].text", default="")))
    return out


def _user(message: dict[str, Any], where: str, unportable: Unportable) -> list[internal.Part]:
    if message.get("name") is not None:
        unportable.field(f"{where}.name")
    content = message.get("content")
    if isinstance(content, str):
        return [Text(content)]
    parts: list[internal.Part] = []
    for k, part in enumerate(as_list(content, f"{where}.content")):
        at = f"{where}.content[{k}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts.append(Text(as_str(part.get("text"), f"{at}.text", default="")))
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str):
                raise bad_request(f"{at}.image_url.url is required", param=f"{at}.image_url")
            if (found := image_from_url(url)) is None:
                raise cannot_carry(f"{at}.image_url", unportable.target, "images by data or URL")
            parts.append(found)
        else:
            raise cannot_carry(at, unportable.target, f"content parts of type {kind!r}")
    return parts


def _assistant(message: dict[str, Any], where: str, unportable: Unportable) -> list[internal.Part]:
    content = message.get("content")
    parts: list[internal.Part] = []
    if content not in (None, ""):
        parts.extend(_texts(content, f"{where}.content", unportable))
    for k, call in enumerate(as_list(message.get("tool_calls") or [], f"{where}.tool_calls")):
        at = f"{where}.tool_calls[{k}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or call.get("type", "function") != "function":
            raise cannot_carry(at, unportable.target, "only function calls")
        args = arguments(function.get("arguments"), f"{at}.function.arguments")
        parts.append(ToolCall(str(call.get("id")), str(function.get("name")), args))
    return parts


def _tool_result(message: dict[str, Any], where: str, unportable: Unportable) -> ToolResult:
    content = message.get("content")
    texts = [] if content is None else _texts(content, f"{where}.content", unportable)
    return ToolResult(str(message.get("tool_call_id")), list(texts))


def _tool(tool: Any, where: str, unportable: Unportable) -> Tool:
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(function, dict) or tool.get("type") != "function":
        raise cannot_carry(where, unportable.target, "only function tools")
    parameters = function.get("parameters")
    return Tool(
        name=as_str(function.get("name"), f"{where}.function.name"),
        parameters=as_dict(parameters, f"{where}.function.parameters")
        if parameters
        else {"type": "object", "properties": {}},
        description=function.get("description")
        if isinstance(function.get("description"), str)
        else None,
        strict=function.get("strict") if isinstance(function.get("strict"), bool) else None,
    )


def _tool_choice(choice: Any, unportable: Unportable) -> ToolChoice | None:
    if choice in ("auto", "required", "none"):
        return ToolChoice(choice)
    function = choice.get("function") if isinstance(choice, dict) else None
    if isinstance(function, dict):
        return ToolChoice("tool", as_str(function.get("name"), "tool_choice.function.name"))
    unportable.field("tool_choice", what=f"tool_choice {choice!r}")
    return None


def _effort(request: Request, effort: Any, unportable: Unportable) -> None:
    if effort == "none":
        request.reasoning_off = True
    elif effort in EFFORTS:
        request.reasoning_effort = effort
    else:
        unportable.field("reasoning_effort", what=f"effort {effort!r}")


# ---- Chat Completions out ----------------------------------------------------------------


def from_internal(request: Request, unportable: Unportable) -> dict[str, Any]:
    out: dict[str, Any] = {"model": request.model}
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": _text_or_parts(request.system)})
    for i, message in enumerate(request.messages):
        messages.extend(_message_out(message, f"messages[{i}]", unportable))
    out["messages"] = messages
    if request.max_output_tokens is not None:
        out["max_completion_tokens"] = request.max_output_tokens
    for name in ("temperature", "top_p"):
        if (value := getattr(request, name)) is not None:
            out[name] = value
    if request.stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}  # the gateway prices every call
    if request.stop:
        if len(request.stop) > MAX_STOPS:
            unportable.field("stop", what=f"more than {MAX_STOPS} stop sequences")
        else:
            out["stop"] = request.stop
    if request.user is not None:
        out["user"] = request.user
    if request.tools:
        out["tools"] = [_tool_out(t) for t in request.tools]
    if request.tool_choice is not None:
        out["tool_choice"] = _tool_choice_out(request.tool_choice)
    if request.parallel_tool_calls is False and request.tools:
        out["parallel_tool_calls"] = False
    if effort := _effort_out(request):
        out["reasoning_effort"] = effort
    if (structured := request.output_format) is not None:
        out["response_format"] = _output_format_out(structured)
    return out


def _output_format_out(structured: OutputFormat) -> dict[str, Any]:
    if structured.kind == "json_object":
        return {"type": "json_object"}
    spec: dict[str, Any] = {"name": structured.name or "response", "schema": structured.schema}
    if structured.strict is not None:
        spec["strict"] = structured.strict
    return {"type": "json_schema", "json_schema": spec}


def _text_or_parts(texts: list[Text]) -> Any:
    if len(texts) == 1:
        return texts[0].text
    return [{"type": "text", "text": t.text} for t in texts]


def _message_out(message: Message, where: str, unportable: Unportable) -> list[dict[str, Any]]:
    if message.role == "assistant":
        return [_assistant_out(message)]
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(message.parts):
        if isinstance(part, ToolResult):
            out.append(_tool_result_out(part, f"{where}.content[{j}]", unportable))
        elif isinstance(part, Text):
            parts.append({"type": "text", "text": part.text})
        elif isinstance(part, internal.Image):
            parts.append({"type": "image_url", "image_url": {"url": image_url(part)}})
    if len(parts) == 1 and parts[0]["type"] == "text":
        out.append({"role": "user", "content": parts[0]["text"]})
    elif parts:
        out.append({"role": "user", "content": parts})
    return out


def _assistant_out(message: Message) -> dict[str, Any]:
    # Reasoning is never handed back to Chat Completions; it takes none.
    texts = [p for p in message.parts if isinstance(p, Text)]
    calls = [p for p in message.parts if isinstance(p, ToolCall)]
    out: dict[str, Any] = {"role": "assistant"}
    out["content"] = _text_or_parts(texts) if texts else None
    if calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in calls
        ]
    return out


def _tool_result_out(result: ToolResult, where: str, unportable: Unportable) -> dict[str, Any]:
    texts: list[Text] = []
    for k, part in enumerate(result.content):
        if not isinstance(part, Text):
            raise cannot_carry(f"{where}.content[{k}]", unportable.target, "only text tool results")
        texts.append(part)
    content: Any = _text_or_parts(texts) if texts else ""
    if result.is_error:
        # Chat has no error flag on tool messages; the model reads the marker instead.
        joined = content if isinstance(content, str) else "".join(t.text for t in texts)
        content = "[tool error] " + joined
    return {"role": "tool", "tool_call_id": result.call_id, "content": content}


def _tool_out(tool: Tool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        function["description"] = tool.description
    function["parameters"] = tool.parameters or {"type": "object"}
    return {"type": "function", "function": function}


def _tool_choice_out(choice: ToolChoice) -> Any:
    if choice.mode == "tool":
        return {"type": "function", "function": {"name": choice.name}}
    return choice.mode


def _effort_out(request: Request) -> str | None:
    if request.reasoning_off:
        return None  # the model's own default: not every model takes "none"
    if request.reasoning_effort is not None:
        return request.reasoning_effort
    if request.reasoning_budget is not None:
        budget = request.reasoning_budget
        return next(effort for floor, effort in EFFORT_FOR_BUDGET if budget >= floor)
    return None
