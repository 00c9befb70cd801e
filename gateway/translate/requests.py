"""Request bodies between the shapes: `to_openai` (Anthropic in) and `to_anthropic` (OpenAI in).

Anthropic: https://docs.anthropic.com/en/api/messages
OpenAI:    https://platform.openai.com/docs/api-reference/chat/create

What cannot be carried faithfully is refused with a 400 in the caller's shape that
names the field (`bad_request(param=...)`), never dropped. Dropped on purpose, because
they change only cost or bookkeeping, not what the model is asked: Anthropic
`cache_control` (OpenAI caches prefixes by itself), OpenAI `image_url.detail`,
`store`, `metadata`, `service_tier`, `parallel_tool_calls: true` and a function's
`strict` flag, and Anthropic thinking blocks in earlier assistant turns (OpenAI
never takes reasoning back).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from gateway.errors import GatewayError, bad_request

# Anthropic requires max_tokens; OpenAI makes it optional. 4096 is what the
# Anthropic docs' own examples use and fits every current Claude model.
DEFAULT_MAX_TOKENS = 4096
# Anthropic `thinking.budget_tokens` ↔ OpenAI `reasoning_effort`, by the lower bound of each band.
EFFORT_FOR_BUDGET = ((16384, "high"), (4096, "medium"), (0, "low"))
OPENAI_MAX_STOPS = 4
_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+);base64,(.*)", re.S)

# Fields with no counterpart, refused unless they hold their default (None = absent only).
_OPENAI_ONLY: dict[str, tuple[Any, ...]] = {
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
    "reasoning_effort": (),
    "functions": (),
    "function_call": (),
}
_ANTHROPIC_PASSED = frozenset(
    {"model", "messages", "system", "max_tokens", "stop_sequences", "stream", "temperature"}
    | {"top_p", "metadata", "tools", "tool_choice", "thinking", "service_tier"}
)
_OPENAI_PASSED = frozenset(
    {"model", "messages", "stream", "stream_options", "temperature", "top_p", "stop", "user"}
    | {"max_tokens", "max_completion_tokens", "tools", "tool_choice", "parallel_tool_calls"}
    | {"response_format", "store", "metadata", "service_tier"}
)


# ---- Anthropic in, OpenAI out ------------------------------------------------------------


def to_openai(body: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic Messages body as a Chat Completions body (model left as given)."""
    for name in body:
        if name not in _ANTHROPIC_PASSED and body[name] is not None:
            raise _cannot(name, "OpenAI models")
    out: dict[str, Any] = {"model": body.get("model")}
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        messages.append({"role": "system", "content": _system_to_openai(system)})
    for i, message in enumerate(body["messages"]):
        messages.extend(_message_to_openai(message, f"messages[{i}]"))
    out["messages"] = messages
    out["max_completion_tokens"] = body["max_tokens"]
    for name in ("temperature", "top_p", "stream"):
        if body.get(name) is not None:
            out[name] = body[name]
    if body.get("stream") is True:
        out["stream_options"] = {"include_usage": True}
    stops = body.get("stop_sequences")
    if stops:
        if not isinstance(stops, list) or len(stops) > OPENAI_MAX_STOPS:
            raise bad_request(
                f"OpenAI models take at most {OPENAI_MAX_STOPS} stop sequences.",
                param="stop_sequences",
            )
        out["stop"] = stops
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and metadata.get("user_id") is not None:
        out["user"] = metadata["user_id"]
    if tools := body.get("tools"):
        out["tools"] = [
            _tool_to_openai(t, f"tools[{i}]") for i, t in enumerate(_list(tools, "tools"))
        ]
    if body.get("tool_choice") is not None:
        out.update(_tool_choice_to_openai(body["tool_choice"]))
    if (thinking := body.get("thinking")) is not None:
        effort = _effort_for(thinking)
        if effort:
            out["reasoning_effort"] = effort
    return out


def _system_to_openai(system: Any) -> Any:
    if isinstance(system, str):
        return system
    if not isinstance(system, list):
        raise bad_request("system must be a string or a list of text blocks", param="system")
    parts = []
    for i, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise _cannot(f"system[{i}]", "OpenAI models", "only text blocks")
        parts.append({"type": "text", "text": block.get("text", "")})
    return parts


def _message_to_openai(message: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
        raise bad_request(f"{where}.role must be user or assistant", param=f"{where}.role")
    content = message.get("content")
    if isinstance(content, str):
        return [{"role": message["role"], "content": content}]
    if not isinstance(content, list):
        raise bad_request(f"{where}.content must be a string or a list", param=f"{where}.content")
    if message["role"] == "assistant":
        return [_assistant_to_openai(content, where)]
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        at = f"{where}.content[{j}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "tool_result":
            out.append(_tool_result_to_openai(block, at))
        elif kind == "text":
            parts.append({"type": "text", "text": block.get("text", "")})
        elif kind == "image":
            parts.append(_image_to_openai(block, at))
        else:
            raise _cannot(at, "OpenAI models", f"content blocks of type {kind!r}")
    if parts:
        out.append({"role": "user", "content": parts})
    return out


def _assistant_to_openai(content: list[Any], where: str) -> dict[str, Any]:
    texts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append({"type": "text", "text": block.get("text", "")})
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            function = {"name": block.get("name"), "arguments": arguments}
            calls.append({"id": block.get("id"), "type": "function", "function": function})
        elif kind not in ("thinking", "redacted_thinking"):
            raise _cannot(f"{where}.content[{j}]", "OpenAI models", f"blocks of type {kind!r}")
    out: dict[str, Any] = {"role": "assistant"}
    out["content"] = texts[0]["text"] if len(texts) == 1 else (texts or None)
    if calls:
        out["tool_calls"] = calls
    return out


def _tool_result_to_openai(block: dict[str, Any], where: str) -> dict[str, Any]:
    content = block.get("content")
    if content is None:
        content = ""
    elif isinstance(content, list):
        texts = []
        for k, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text":
                raise _cannot(f"{where}.content[{k}]", "OpenAI models", "only text tool results")
            texts.append({"type": "text", "text": _text(part, f"{where}.content[{k}]")})
        content = texts
    elif not isinstance(content, str):
        raise bad_request(f"{where}.content must be a string or a list", param=f"{where}.content")
    if block.get("is_error") is True:
        # OpenAI has no error flag on tool messages; the model reads the marker instead.
        content = "[tool error] " + (
            content if isinstance(content, str) else "".join(t["text"] for t in content)
        )
    return {"role": "tool", "tool_call_id": block.get("tool_use_id"), "content": content}


def _image_to_openai(block: dict[str, Any], where: str) -> dict[str, Any]:
    source = block.get("source") if isinstance(block.get("source"), dict) else {}
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type')};base64,{source.get('data')}"
    elif source.get("type") == "url":
        url = source.get("url")
    else:
        raise _cannot(f"{where}.source", "OpenAI models", "images by base64 or URL only")
    return {"type": "image_url", "image_url": {"url": url}}


def _tool_to_openai(tool: Any, where: str) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type") not in (None, "custom"):
        raise _cannot(where, "OpenAI models", "only custom tools (server tools are Anthropic's)")
    function: dict[str, Any] = {"name": tool.get("name")}
    if tool.get("description") is not None:
        function["description"] = tool["description"]
    function["parameters"] = tool.get("input_schema") or {"type": "object"}
    return {"type": "function", "function": function}


def _tool_choice_to_openai(choice: Any) -> dict[str, Any]:
    if not isinstance(choice, dict):
        raise bad_request("tool_choice must be an object", param="tool_choice")
    kind = choice.get("type")
    mapped: Any = None
    if isinstance(kind, str):  # a list or object here is junk, not a lookup key
        mapped = {"auto": "auto", "any": "required", "none": "none"}.get(kind)
    if kind == "tool":
        mapped = {"type": "function", "function": {"name": choice.get("name")}}
    if mapped is None:
        raise _cannot("tool_choice", "OpenAI models", f"tool_choice of type {kind!r}")
    out: dict[str, Any] = {"tool_choice": mapped}
    if choice.get("disable_parallel_tool_use") is True:
        out["parallel_tool_calls"] = False
    return out


def _effort_for(thinking: Any) -> str | None:
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind == "disabled":
        return None
    budget = thinking.get("budget_tokens") if kind == "enabled" else None
    if type(budget) is not int:
        raise _cannot("thinking", "OpenAI models", "thinking with a budget_tokens")
    if budget < 0:
        raise bad_request(
            "thinking.budget_tokens must not be negative", param="thinking.budget_tokens"
        )
    return next(effort for floor, effort in EFFORT_FOR_BUDGET if budget >= floor)


# ---- OpenAI in, Anthropic out ------------------------------------------------------------


def to_anthropic(body: dict[str, Any]) -> dict[str, Any]:
    """A Chat Completions body as an Anthropic Messages body (model left as given)."""
    for name, defaults in _OPENAI_ONLY.items():
        if body.get(name) is not None and body[name] not in defaults:
            raise _cannot(name, "Anthropic models")
    for name in body:
        if name not in _OPENAI_PASSED and name not in _OPENAI_ONLY:
            raise _cannot(name, "Anthropic models")
    response_format = body.get("response_format")
    if response_format is not None and response_format != {"type": "text"}:
        raise _cannot("response_format", "Anthropic models", "structured output")
    out: dict[str, Any] = {"model": body.get("model")}
    system, messages = _split_system(body["messages"])
    if system is not None:
        out["system"] = system
    out["messages"] = messages
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if limit is not None and (type(limit) is not int or limit < 1):
        raise bad_request("max_completion_tokens must be a positive integer", param="max_tokens")
    out["max_tokens"] = limit or DEFAULT_MAX_TOKENS
    temperature = body.get("temperature")
    if temperature is not None:
        if not isinstance(temperature, (int, float)) or temperature > 1:
            raise _cannot("temperature", "Anthropic models", "a temperature above 1")
        out["temperature"] = temperature
    if body.get("top_p") is not None:
        out["top_p"] = body["top_p"]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else stop
    if body.get("stream") is not None:
        out["stream"] = body["stream"]
    if body.get("user") is not None:
        out["metadata"] = {"user_id": body["user"]}
    if tools := body.get("tools"):
        out["tools"] = [
            _tool_to_anthropic(t, f"tools[{i}]") for i, t in enumerate(_list(tools, "tools"))
        ]
    choice = _tool_choice_to_anthropic(body.get("tool_choice"), body.get("parallel_tool_calls"))
    if choice is not None:
        out["tool_choice"] = choice
    return out


def _split_system(messages: list[Any]) -> tuple[Any, list[dict[str, Any]]]:
    """Leading system/developer messages become Anthropic's top-level system."""
    system: list[dict[str, Any]] = []
    plain: str | None = None
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise bad_request(f"{where} must be an object", param=where)
        role = message.get("role")
        if role in ("system", "developer"):
            if out:
                raise _cannot(where, "Anthropic models", "system messages after the first turn")
            content = message.get("content")
            plain = content if isinstance(content, str) and not system and plain is None else None
            system.extend(_text_blocks(content, f"{where}.content"))
        elif role == "tool":
            result = _tool_message_to_anthropic(message, where)
            if out and out[-1]["role"] == "user" and _all_results(out[-1]["content"]):
                out[-1]["content"].append(result)
            else:
                out.append({"role": "user", "content": [result]})
        elif role == "user":
            out.append({"role": "user", "content": _user_to_anthropic(message, where)})
        elif role == "assistant":
            out.append({"role": "assistant", "content": _assistant_to_anthropic(message, where)})
        else:
            raise _cannot(f"{where}.role", "Anthropic models", f"role {role!r}")
    if not system:
        return None, out
    return (plain if plain is not None else system), out


def _all_results(content: Any) -> bool:
    return isinstance(content, list) and all(b.get("type") == "tool_result" for b in content)


def _text_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise bad_request(f"{where} must be a string or a list", param=where)
    blocks = []
    for k, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") != "text":
            raise _cannot(f"{where}[{k}]", "Anthropic models", "only text parts here")
        blocks.append({"type": "text", "text": part.get("text", "")})
    return blocks


def _user_to_anthropic(message: dict[str, Any], where: str) -> Any:
    if message.get("name") is not None:
        raise _cannot(f"{where}.name", "Anthropic models")
    content = message.get("content")
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise bad_request(f"{where}.content must be a string or a list", param=f"{where}.content")
    blocks: list[dict[str, Any]] = []
    for k, part in enumerate(content):
        at = f"{where}.content[{k}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image_url":
            blocks.append(_image_to_anthropic(part, at))
        else:
            raise _cannot(at, "Anthropic models", f"content parts of type {kind!r}")
    return blocks


def _image_to_anthropic(part: dict[str, Any], where: str) -> dict[str, Any]:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise bad_request(f"{where}.image_url.url is required", param=f"{where}.image_url")
    if match := _DATA_URL.fullmatch(url):
        source = {"type": "base64", "media_type": match[1], "data": match[2]}
    elif url.startswith(("https://", "http://")):
        source = {"type": "url", "url": url}
    else:
        raise _cannot(f"{where}.image_url", "Anthropic models", "images other than base64 or URL")
    return {"type": "image", "source": source}


def _assistant_to_anthropic(message: dict[str, Any], where: str) -> Any:
    content = message.get("content")
    calls = _list(message.get("tool_calls") or [], f"{where}.tool_calls")
    if isinstance(content, str) and not calls:
        return content
    blocks = [] if content in (None, "") else _text_blocks(content, f"{where}.content")
    for k, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or call.get("type", "function") != "function":
            raise _cannot(f"{where}.tool_calls[{k}]", "Anthropic models", "only function calls")
        try:
            arguments = orjson.loads(function.get("arguments") or "{}")
        except orjson.JSONDecodeError:
            raise bad_request(
                f"{where}.tool_calls[{k}].function.arguments is not JSON",
                param=f"{where}.tool_calls[{k}].function.arguments",
            ) from None
        tool_use = {"type": "tool_use", "id": call.get("id"), "name": function.get("name")}
        blocks.append({**tool_use, "input": arguments})
    return blocks


def _tool_message_to_anthropic(message: dict[str, Any], where: str) -> dict[str, Any]:
    content = message.get("content")
    result: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.get("tool_call_id")}
    result["content"] = (
        content if isinstance(content, str) else _text_blocks(content, f"{where}.content")
    )
    return result


def _tool_to_anthropic(tool: Any, where: str) -> dict[str, Any]:
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(function, dict) or tool.get("type") != "function":
        raise _cannot(where, "Anthropic models", "only function tools")
    out: dict[str, Any] = {"name": function.get("name")}
    if function.get("description") is not None:
        out["description"] = function["description"]
    out["input_schema"] = function.get("parameters") or {"type": "object", "properties": {}}
    return out


def _tool_choice_to_anthropic(choice: Any, parallel: Any) -> dict[str, Any] | None:
    if choice is None:
        out = {"type": "auto"} if parallel is False else None
    elif choice in ("auto", "required", "none"):
        out = {"type": {"auto": "auto", "required": "any", "none": "none"}[choice]}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        out = {"type": "tool", "name": choice["function"].get("name")}
    else:
        raise _cannot("tool_choice", "Anthropic models", f"tool_choice {choice!r}")
    if parallel is False and out is not None and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise bad_request(f"{where} must be a list", param=where)
    return value


def _text(part: dict[str, Any], where: str) -> str:
    text = part.get("text", "")
    if not isinstance(text, str):
        raise bad_request(f"{where}.text must be a string", param=f"{where}.text")
    return text


def _cannot(field: str, target: str, what: str | None = None) -> GatewayError:
    detail = f" ({what})" if what else ""
    return bad_request(
        f"{field}{detail} cannot be translated faithfully for {target}; "
        f"remove it, or call a model served in this endpoint's own shape.",
        param=field,
    )
