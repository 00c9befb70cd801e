"""Non-streamed Responses API answers to and from the internal form.

https://platform.openai.com/docs/api-reference/responses/object

An answer translated for a Responses caller gets an id starting `resp_metis_`
(never stored, see the package docstring), and item ids derived from it, so that the
streamed and the unstreamed form of one answer agree (streams.py builds its final
`response.completed` with `from_internal`). Reasoning comes back as a reasoning item
whose summary is the model's visible reasoning and whose `encrypted_content` packs what
the provider needs to take it back in a later turn (Anthropic's thinking signature,
or its redacted thinking); requests.py unpacks it.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Mapping
from typing import Any

import orjson

from analytics.usage import Usage
from gateway.shapes import internal
from gateway.shapes.base import token_count
from gateway.shapes.openai_responses.requests import (
    REASONING_PACK,
    ResponsesRequest,
    function_tool,
    summary_of,
    text_format,
    tool_choice,
)

TRANSLATED_ID_PREFIX = "resp_metis_"
ITEM_PREFIXES = {internal.Text: "msg_", internal.ToolCall: "fc_", internal.Reasoning: "rs_"}
STOP_FOR_REASON = {"max_output_tokens": "max_tokens", "content_filter": "refusal"}


# ---- Responses to internal ---------------------------------------------------------------


def to_internal(body: dict[str, Any]) -> internal.Response:
    parts: list[internal.Text | internal.ToolCall | internal.Reasoning] = []
    output = body.get("output")
    for item in output if isinstance(output, list) else []:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "message":
            contents = item.get("content")
            for content in contents if isinstance(contents, list) else []:
                text = (
                    content.get("text", content.get("refusal"))
                    if isinstance(content, dict)
                    else None
                )
                if isinstance(text, str):
                    parts.append(internal.Text(text))
        elif kind == "function_call":
            parts.append(
                internal.ToolCall(
                    str(item.get("call_id", "")),
                    str(item.get("name", "")),
                    str(item.get("arguments", "")),
                )
            )
        elif kind == "reasoning":
            encrypted = item.get("encrypted_content")
            encrypted = encrypted if isinstance(encrypted, str) else None
            parts.append(internal.Reasoning(text=summary_of(item), encrypted=encrypted))
    return internal.Response(
        id=str(body.get("id", "")).removeprefix("resp_"),
        model=str(body.get("model", "")),
        parts=parts,
        stop=stop_reason(body, parts),
        usage=usage_of(body.get("usage")),
    )


def stop_reason(body: dict[str, Any], parts: list[Any]) -> internal.StopReason:
    details = body.get("incomplete_details")
    reason = details.get("reason") if isinstance(details, dict) else None
    if body.get("status") == "incomplete" and reason in STOP_FOR_REASON:
        return STOP_FOR_REASON[reason]  # type: ignore[return-value]
    if any(isinstance(part, internal.ToolCall) for part in parts):
        return "tool_use"
    return "end_turn"


def usage_of(usage: Any) -> Usage:
    return read_usage(usage) if isinstance(usage, Mapping) else Usage()


def read_usage(usage: Mapping[str, Any]) -> Usage:
    """Usage as the Responses API reports it: input includes cached, output reasoning."""
    input_details = usage.get("input_tokens_details")
    if not isinstance(input_details, Mapping):
        input_details = {}
    output_details = usage.get("output_tokens_details")
    if not isinstance(output_details, Mapping):
        output_details = {}
    return Usage(
        input_tokens=token_count(usage.get("input_tokens")),
        output_tokens=token_count(usage.get("output_tokens")),
        cache_read_tokens=token_count(input_details.get("cached_tokens")),
        cache_write_tokens=token_count(input_details.get("cache_write_tokens")),
        reasoning_tokens=token_count(output_details.get("reasoning_tokens")),
    )


# ---- internal to Responses ---------------------------------------------------------------


def response_id(provider_id: str) -> str:
    return TRANSLATED_ID_PREFIX + provider_id


def item_id(response_id: str, index: int, part: Any) -> str:
    digest = hashlib.blake2b(f"{response_id}:{index}".encode(), digest_size=24).hexdigest()
    return ITEM_PREFIXES[type(part)] + digest


def from_internal(response: internal.Response, request: internal.Request) -> dict[str, Any]:
    rid, namespaces = response_id(response.id), namespaces_of(request)
    output = [output_item(rid, i, part, namespaces) for i, part in enumerate(response.parts)]
    return envelope(rid, response.model, request, output, response.stop, response.usage)


def envelope(
    rid: str,
    model: str,
    request: internal.Request,
    output: list[dict[str, Any]] | None,
    stop: internal.StopReason | None,
    usage: Usage | None,
    *,
    created_at: int | None = None,
) -> dict[str, Any]:
    """The response object; `output` and `usage` None while a stream is in progress."""
    created_at = created_at or int(time.time())
    status = "in_progress" if output is None else "completed"
    incomplete = None
    if stop == "max_tokens":
        status, incomplete = "incomplete", {"reason": "max_output_tokens"}
    elif stop == "refusal":
        status, incomplete = "incomplete", {"reason": "content_filter"}
    effort = "none" if request.reasoning_off else request.reasoning_effort
    return {
        "id": rid,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": False,
        "completed_at": int(time.time()) if status == "completed" else None,
        "error": None,
        "incomplete_details": incomplete,
        "instructions": "\n\n".join(t.text for t in request.system) or None,
        "max_output_tokens": request.max_output_tokens,
        "model": model,
        "output": output or [],
        "parallel_tool_calls": request.parallel_tool_calls is not False,
        "previous_response_id": None,
        "reasoning": {"effort": effort, "summary": None},
        "store": False,  # never stored: see the package docstring
        "temperature": request.temperature,
        "text": {
            "format": text_format(request.output_format)
            if request.output_format
            else {"type": "text"}
        },
        "tool_choice": tool_choice(request.tool_choice) if request.tool_choice else "auto",
        "tools": [function_tool(tool) for tool in request.tools],
        "top_p": request.top_p,
        "truncation": "disabled",
        "usage": None if usage is None else usage_body(usage),
        "user": request.user,
        "metadata": {},
    }


def namespaces_of(request: internal.Request) -> dict[str, str]:
    return request.namespaces if isinstance(request, ResponsesRequest) else {}


def output_item(
    rid: str, index: int, part: Any, namespaces: dict[str, str], *, done: bool = True
) -> dict[str, Any]:
    """Part `index` as an output item; `done=False`: as `output_item.added` shows it."""
    iid = item_id(rid, index, part)
    status = "completed" if done else "in_progress"
    if isinstance(part, internal.Text):
        content = [output_text(part.text)] if done else []
        return {
            "id": iid,
            "type": "message",
            "status": status,
            "content": content,
            "role": "assistant",
        }
    if isinstance(part, internal.ToolCall):
        call = {
            "id": iid,
            "type": "function_call",
            "status": status,
            "arguments": part.arguments if done else "",
            "call_id": part.id,
            "name": part.name,
        }
        if namespace := namespaces.get(part.name):
            call["namespace"] = namespace
        return call
    item: dict[str, Any] = {"id": iid, "type": "reasoning", "summary": []}
    if done:
        if part.text:
            item["summary"] = [summary_text(part.text)]
        if packed := pack_reasoning(part):
            item["encrypted_content"] = packed
    return item


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def summary_text(text: str) -> dict[str, Any]:
    return {"type": "summary_text", "text": text}


def pack_reasoning(part: internal.Reasoning) -> str | None:
    """What the provider needs to take this reasoning back, as `encrypted_content`."""
    if part.signature is None and part.encrypted is None:
        return None
    fields = {"s": part.signature, "r": part.encrypted}  # the text is the summary's
    return REASONING_PACK + base64.urlsafe_b64encode(orjson.dumps(fields)).decode()


def usage_body(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cache_read_tokens,
            "cache_write_tokens": usage.cache_write_tokens,  # Anthropic's cache writes
        },
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }
