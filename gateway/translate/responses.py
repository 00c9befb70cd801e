"""Whole (non-streamed) responses and their usage between the shapes.

Anthropic message: https://docs.anthropic.com/en/api/messages#response
OpenAI completion: https://platform.openai.com/docs/api-reference/chat/object

Usage: Anthropic `input_tokens` EXCLUDES cache reads and writes; OpenAI
`prompt_tokens` INCLUDES `prompt_tokens_details.cached_tokens`. OpenAI reports no
cache writes, so an Anthropic client sees `cache_creation_input_tokens: 0`.
`model` is always the real upstream model, so the caller sees what answered.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.shapes.base import token_count

FINISH_FOR_STOP = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# OpenAI does not say whether `stop` was a stop sequence, so it reads as end_turn.
STOP_FOR_FINISH = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def completion_id(message_id: str) -> str:
    return "chatcmpl-" + message_id.removeprefix("msg_")


def message_id(completion_id: str) -> str:
    return "msg_" + completion_id.removeprefix("chatcmpl-")


def openai_usage(usage: Any) -> dict[str, Any]:
    """Anthropic usage (cache excluded from input) as OpenAI usage (cache included)."""
    usage = usage if isinstance(usage, dict) else {}
    read = token_count(usage.get("cache_read_input_tokens"))
    written = token_count(usage.get("cache_creation_input_tokens"))
    prompt = token_count(usage.get("input_tokens")) + read + written
    completion = token_count(usage.get("output_tokens"))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": read},
    }


def anthropic_usage(usage: Any) -> dict[str, Any]:
    """OpenAI usage (cache included in prompt) as Anthropic usage (cache excluded)."""
    usage = usage if isinstance(usage, dict) else {}
    details = usage.get("prompt_tokens_details")
    cached = token_count(details.get("cached_tokens")) if isinstance(details, dict) else 0
    prompt = token_count(usage.get("prompt_tokens"))
    return {
        "input_tokens": max(prompt - cached, 0),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
        "output_tokens": token_count(usage.get("completion_tokens")),
    }


def message_to_completion(message: dict[str, Any], *, created: int) -> dict[str, Any]:
    """An Anthropic message as a chat.completion. Thinking blocks are left out:
    Chat Completions never returns reasoning text."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in message.get("content") or []:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            function = {"name": block.get("name"), "arguments": arguments}
            calls.append({"id": block.get("id"), "type": "function", "function": function})
    reply: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    reply["refusal"] = None
    if calls:
        reply["tool_calls"] = calls
    finish = FINISH_FOR_STOP.get(message.get("stop_reason") or "end_turn", "stop")
    return {
        "id": completion_id(str(message.get("id", ""))),
        "object": "chat.completion",
        "created": created,
        "model": message.get("model"),
        "choices": [{"index": 0, "message": reply, "logprobs": None, "finish_reason": finish}],
        "usage": openai_usage(message.get("usage")),
    }


def completion_to_message(completion: dict[str, Any]) -> dict[str, Any]:
    """A chat.completion (its first choice) as an Anthropic message."""
    choices = completion.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    reply = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    content: list[dict[str, Any]] = []
    text = reply.get("content") or reply.get("refusal")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    for call in reply.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            block = {"type": "tool_use", "id": call.get("id"), "name": function.get("name")}
            content.append({**block, "input": parse_arguments(function.get("arguments"))})
    stop = STOP_FOR_FINISH.get(choice.get("finish_reason") or "stop", "end_turn")
    return {
        "id": message_id(str(completion.get("id", ""))),
        "type": "message",
        "role": "assistant",
        "model": completion.get("model"),
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": anthropic_usage(completion.get("usage")),
    }


def parse_arguments(arguments: Any) -> Any:
    """Tool-call arguments (a JSON string) as Anthropic's `input` object."""
    try:
        parsed = orjson.loads(arguments or "{}")
    except (orjson.JSONDecodeError, TypeError):
        return {}
    return parsed if isinstance(parsed, dict) else {}
