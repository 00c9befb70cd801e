"""Responses API request bodies to and from the internal form.

https://platform.openai.com/docs/api-reference/responses/create

Carried: `input` (a string, or messages with input_text / input_image / output_text /
refusal parts, function_call, function_call_output and reasoning items), `instructions`
and system or developer messages (the system prompt), function `tools`, `tool_choice`,
`parallel_tool_calls`, `reasoning.effort`, `text.format` (json_schema, json_object),
`max_output_tokens`, `temperature`, `top_p`, `user` / `safety_identifier`.

Dropped on purpose, because they change only cost, retention or bookkeeping, not what
the model is asked: `store`, `metadata`, `include`, `prompt_cache_key`,
`prompt_cache_retention`, `service_tier`, `truncation`, `stream_options`,
`client_metadata` (Codex's), `reasoning.summary` (translated answers always carry the
reasoning text they got).

Refused with a 400, since they need state Metis does not keep: `previous_response_id`,
`conversation`, `item_reference` items. Everything else without an equivalent (hosted
tools, files, `background`, logprobs, ...) goes to `Unportable`.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.errors import bad_request
from gateway.shapes import internal

_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+);base64,(.*)", re.S)
# Our own packing of a translated answer's reasoning (answers.pack_reasoning).
REASONING_PACK = "metis1."
_IGNORED = frozenset(
    {"store", "metadata", "include", "prompt_cache_key", "prompt_cache_retention"}
    | {"service_tier", "truncation", "stream_options", "client_metadata"}
)
_CARRIED = frozenset(
    {"model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls"}
    | {"reasoning", "text", "max_output_tokens", "temperature", "top_p", "user", "stream"}
    | {"safety_identifier"}
)
_STATEFUL = ("previous_response_id", "conversation")
# Fields with no counterpart that are harmless at these values.
_DEFAULTS: dict[str, tuple[Any, ...]] = {
    "background": (False,),
    "top_logprobs": (0,),
    "max_tool_calls": (),
    "prompt": (),
}
EFFORTS = ("minimal", "low", "medium", "high")


@dataclass(slots=True)
class ResponsesRequest(internal.Request):
    """The internal request, plus what only the answer to a Responses caller needs: the
    namespace each function of a `namespace` tool came from (flattened for the provider,
    named again on the caller's function_call items). The provider never sees it."""

    namespaces: dict[str, str] = field(default_factory=dict)


def to_internal(body: dict[str, Any], unportable: internal.Unportable) -> ResponsesRequest:
    for name in _STATEFUL:
        if body.get(name):
            raise stateful(name)
    for name, value in body.items():
        if name in _CARRIED or name in _IGNORED or value is None:
            continue
        if value not in _DEFAULTS.get(name, ()):
            unportable.field(name)
    system, messages = _input(body.get("input"), unportable)
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        system.insert(0, internal.Text(instructions))
    elif instructions:
        raise bad_request("instructions must be a string", param="instructions")
    namespaces: dict[str, str] = {}
    request = ResponsesRequest(
        model=body.get("model") or "",
        messages=messages,
        system=system,
        max_output_tokens=body.get("max_output_tokens"),
        stream=body.get("stream") is True,
        temperature=_number(body, "temperature"),
        top_p=_number(body, "top_p"),
        tools=_tools(body.get("tools"), unportable, namespaces),
        tool_choice=_tool_choice(body.get("tool_choice"), unportable),
        parallel_tool_calls=_flag(body, "parallel_tool_calls"),
        output_format=_output_format(body.get("text"), unportable),
        user=_user(body),
        namespaces=namespaces,
    )
    _reasoning(body.get("reasoning"), request, unportable)
    return request


def from_internal(request: internal.Request, unportable: internal.Unportable) -> dict[str, Any]:
    """A Responses body for a provider that speaks it (nothing is stored there either)."""
    out: dict[str, Any] = {"model": request.model, "store": False}
    if request.system:
        out["instructions"] = "\n\n".join(t.text for t in request.system)
    items: list[dict[str, Any]] = []
    for message in request.messages:
        items.extend(_items_from(message))
    out["input"] = items
    if request.stop:
        unportable.field("stop")
    optional = {
        "max_output_tokens": request.max_output_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "parallel_tool_calls": request.parallel_tool_calls,
        "user": request.user,
    }
    out |= {k: v for k, v in optional.items() if v is not None}
    if request.stream:
        out["stream"] = True
    if request.tools:
        out["tools"] = [function_tool(tool) for tool in request.tools]
    if request.tool_choice is not None:
        out["tool_choice"] = tool_choice(request.tool_choice)
    if request.output_format is not None:
        out["text"] = {"format": text_format(request.output_format)}
    if request.reasoning_off:
        out["reasoning"] = {"effort": "none"}
    elif effort := request.reasoning_effort or _effort_for(request.reasoning_budget):
        out["reasoning"] = {"effort": effort}
    return out


def stateful(name: str) -> Exception:
    return bad_request(
        f"{name} needs conversation state that Metis does not keep for models served in "
        f"another shape (their responses are not stored): send the whole conversation as "
        f"`input` instead, or call an OpenAI model.",
        param=name,
    )


# ---- input items ---------------------------------------------------------------------------


def _input(
    value: Any, unportable: internal.Unportable
) -> tuple[list[internal.Text], list[internal.Message]]:
    if isinstance(value, str):
        return [], [internal.Message("user", [internal.Text(value)])]
    system: list[internal.Text] = []
    messages: list[internal.Message] = []

    def add(role: str, parts: list[internal.Part]) -> None:
        if messages and messages[-1].role == role:  # consecutive items make one turn
            messages[-1].parts.extend(parts)
        elif parts:
            messages.append(internal.Message(role, parts))  # type: ignore[arg-type]

    for i, item in enumerate(value or []):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise bad_request(f"{where} must be an object", param="input")
        kind = item.get("type", "message")
        role = item.get("role")
        if kind == "message" and role in ("system", "developer"):
            system.extend(
                t for t in _content(item, where, unportable) if isinstance(t, internal.Text)
            )
        elif kind == "message" and role in ("user", "assistant"):
            add(role, list(_content(item, where, unportable)))
        elif kind == "message":
            raise bad_request(
                f"{where}.role must be user, assistant, system or developer", param="input"
            )
        elif kind == "function_call":
            call_id, name = item.get("call_id"), item.get("name")
            arguments = item.get("arguments")
            if not isinstance(call_id, str) or not isinstance(name, str):
                raise bad_request(f"{where} needs call_id and name", param="input")
            text = arguments if isinstance(arguments, str) else "{}"
            add("assistant", [internal.ToolCall(call_id, name, text)])
        elif kind == "function_call_output":
            if not isinstance(call_id := item.get("call_id"), str):
                raise bad_request(f"{where}.call_id is required", param="input")
            output = _tool_output(item.get("output"), where, unportable)
            add("user", [internal.ToolResult(call_id, output)])
        elif kind == "reasoning":
            add("assistant", [_reasoning_item(item)])
        elif kind == "item_reference":
            raise stateful("item_reference")
        else:
            unportable.field("input", None, f"{kind} items")
    return system, messages


def _content(item: dict[str, Any], where: str, unportable: internal.Unportable) -> list[Any]:
    content = item.get("content")
    if isinstance(content, str):
        return [internal.Text(content)]
    if not isinstance(content, list):
        raise bad_request(f"{where}.content must be a string or a list", param="input")
    parts: list[Any] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text") and isinstance(part.get("text"), str):
            parts.append(internal.Text(part["text"]))
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            parts.append(internal.Text(part["refusal"]))
        elif kind == "input_image":
            parts.append(_image(part, f"{where}.content[{j}]", unportable))
        else:
            unportable.field("input", None, f"{kind or 'untyped'} content")
    return parts


def _image(part: dict[str, Any], where: str, unportable: internal.Unportable) -> internal.Image:
    url = part.get("image_url")
    if not isinstance(url, str) or not url:
        unportable.field("input", None, "images by file_id")
        return internal.Image(url="")
    if match := _DATA_URL.fullmatch(url):
        return internal.Image(media_type=match[1], data=match[2])
    if url.startswith("data:"):
        raise bad_request(
            f"{where}.image_url must be a base64 data URL or an http(s) URL", param="input"
        )
    return internal.Image(url=url)


def _tool_output(
    value: Any, where: str, unportable: internal.Unportable
) -> list[internal.Text | internal.Image]:
    if isinstance(value, str):
        return [internal.Text(value)]
    if isinstance(value, list):
        parts = _content({"content": value}, where, unportable)
        return [p for p in parts if isinstance(p, internal.Text | internal.Image)]
    raise bad_request(f"{where}.output must be a string or a list", param="input")


def _reasoning_item(item: dict[str, Any]) -> internal.Reasoning:
    """A reasoning item handed back. Only reasoning a translated answer carried (packed
    by answers.pack_reasoning) can go back to its provider; OpenAI's own encrypted
    reasoning is kept as text only, which the other side drops."""
    text = summary_of(item)
    packed = item.get("encrypted_content")
    if isinstance(packed, str) and packed.startswith(REASONING_PACK):
        try:
            fields = orjson.loads(base64.urlsafe_b64decode(packed[len(REASONING_PACK) :]))
        except (ValueError, orjson.JSONDecodeError):
            fields = None
        if isinstance(fields, dict):
            signature, encrypted = fields.get("s"), fields.get("r")
            return internal.Reasoning(
                text=text,
                signature=signature if isinstance(signature, str) else None,
                encrypted=encrypted if isinstance(encrypted, str) else None,
            )
    return internal.Reasoning(text=text)


def summary_of(item: dict[str, Any]) -> str:
    """The text of a reasoning item's summary parts."""
    summary = item.get("summary")
    parts = summary if isinstance(summary, list) else []
    return "".join(
        s["text"] for s in parts if isinstance(s, dict) and isinstance(s.get("text"), str)
    )


# ---- tools, formats, reasoning ------------------------------------------------------------


def _tools(
    value: Any, unportable: internal.Unportable, namespaces: dict[str, str], where: str = "tools"
) -> list[internal.Tool]:
    """Function tools; the functions of a `namespace` tool (Codex's multi_agent_v1)
    flattened beside them, each noted in `namespaces`."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise bad_request(f"{where} must be a list", param="tools")
    tools = []
    for i, tool in enumerate(value):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind == "namespace" and where == "tools" and isinstance(tool.get("name"), str):
            inner = _tools(tool.get("tools"), unportable, namespaces, f"tools[{i}].tools")
            namespaces.update(dict.fromkeys((t.name for t in inner), tool["name"]))
            tools.extend(inner)
            continue
        if kind != "function":
            unportable.field("tools", None, f"{kind or 'untyped'} tools")
            continue
        if not isinstance(tool.get("name"), str):
            raise bad_request(f"{where}[{i}].name is required", param="tools")
        parameters = tool.get("parameters")
        description = tool.get("description")
        tools.append(
            internal.Tool(
                name=tool["name"],
                parameters=parameters if isinstance(parameters, dict) else {"type": "object"},
                description=description if isinstance(description, str) else None,
                strict=tool.get("strict") if isinstance(tool.get("strict"), bool) else None,
            )
        )
    return tools


def _tool_choice(value: Any, unportable: internal.Unportable) -> internal.ToolChoice | None:
    if value is None:
        return None
    if value in ("auto", "required", "none"):
        return internal.ToolChoice(value)
    if isinstance(value, dict) and value.get("type") == "function":
        if not isinstance(value.get("name"), str):
            raise bad_request("tool_choice.name is required", param="tool_choice")
        return internal.ToolChoice("tool", value["name"])
    unportable.field("tool_choice", None, "anything but auto, required, none or a function")
    return None


def _output_format(value: Any, unportable: internal.Unportable) -> internal.OutputFormat | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise bad_request("text must be an object", param="text")
    if value.get("verbosity") not in (None, "medium"):
        unportable.field("text.verbosity")
    fmt = value.get("format")
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if fmt is None or kind == "text":
        return None
    if kind == "json_object":
        return internal.OutputFormat("json_object")
    if kind == "json_schema" and isinstance(fmt, dict) and isinstance(fmt.get("schema"), dict):
        return internal.OutputFormat(
            "json_schema", schema=fmt["schema"], name=fmt.get("name"), strict=fmt.get("strict")
        )
    raise bad_request(
        "text.format must be text, json_object, or json_schema with a schema",
        param="text.format",
    )


def _reasoning(value: Any, request: internal.Request, unportable: internal.Unportable) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise bad_request("reasoning must be an object", param="reasoning")
    effort = value.get("effort")
    if effort == "none":
        request.reasoning_off = True
    elif effort in EFFORTS:
        request.reasoning_effort = effort
    elif effort is not None:
        unportable.field("reasoning.effort", None, f"{effort!r}")


def _effort_for(budget: int | None) -> str | None:
    if budget is None:
        return None
    return "high" if budget >= 16384 else "medium" if budget >= 4096 else "low"


def _user(body: dict[str, Any]) -> str | None:
    user = body.get("user") or body.get("safety_identifier")
    return user if isinstance(user, str) else None


def _number(body: dict[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise bad_request(f"{name} must be a number", param=name)
    return value


def _flag(body: dict[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise bad_request(f"{name} must be true or false", param=name)
    return value


# ---- internal to Responses (shared with answers.py) ------------------------------------------


def function_tool(tool: internal.Tool) -> dict[str, Any]:
    return {
        "type": "function",
        "name": tool.name,
        "description": tool.description,
        "parameters": tool.parameters,
        "strict": tool.strict if tool.strict is not None else False,
    }


def tool_choice(choice: internal.ToolChoice) -> Any:
    if choice.mode == "tool":
        return {"type": "function", "name": choice.name}
    return choice.mode


def text_format(fmt: internal.OutputFormat) -> dict[str, Any]:
    if fmt.kind == "json_object":
        return {"type": "json_object"}
    out: dict[str, Any] = {"type": "json_schema", "name": fmt.name or "output"}
    out["schema"] = fmt.schema or {}
    if fmt.strict is not None:
        out["strict"] = fmt.strict
    return out


def _items_from(message: internal.Message) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    content: list[dict[str, Any]] = []

    def flush() -> None:
        if content:
            items.append({"type": "message", "role": message.role, "content": list(content)})
            content.clear()

    text_type = "output_text" if message.role == "assistant" else "input_text"
    for part in message.parts:
        if isinstance(part, internal.Text):
            content.append({"type": text_type, "text": part.text})
        elif isinstance(part, internal.Image):
            content.append({"type": "input_image", "image_url": image_url(part), "detail": "auto"})
        elif isinstance(part, internal.ToolCall):
            flush()
            items.append(
                {
                    "type": "function_call",
                    "call_id": part.id,
                    "name": part.name,
                    "arguments": part.arguments,
                }
            )
        elif isinstance(part, internal.ToolResult):
            flush()
            output = [
                {"type": "input_text", "text": p.text}
                if isinstance(p, internal.Text)
                else {"type": "input_image", "image_url": image_url(p), "detail": "auto"}
                for p in part.content
            ]
            items.append(
                {"type": "function_call_output", "call_id": part.call_id, "output": output}
            )
        # Reasoning never goes to another provider (internal.Reasoning): dropped here.
    flush()
    return items


def image_url(image: internal.Image) -> str:
    if image.data is not None:
        return f"data:{image.media_type or 'image/png'};base64,{image.data}"
    return image.url or ""
