"""A finished request leaves nothing behind for the cyclic garbage collector.

Under load the collector's pauses were the gateway's worst latency: when a request's
objects sit in a reference cycle, they pile up until a collection, and a full one
scans every object in the process while every stream in flight waits.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpResponseBase

PROMPT = [{"role": "user", "content": "Say hello."}]


@pytest.fixture
def no_4xx_log_records() -> Iterator[None]:
    """Django logs 4xx answers with the request attached, and pytest keeps every record."""
    logger = logging.getLogger("django.request")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


def test_finished_requests_are_freed_without_the_garbage_collector(
    gateway, token, no_4xx_log_records
):
    claude = anthropic.Anthropic(base_url=gateway.url, api_key=token, max_retries=0)
    gpt = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=token, max_retries=0)

    def calls() -> None:
        claude.messages.create(model="haiku", max_tokens=32, messages=PROMPT)
        with claude.messages.stream(model="haiku", max_tokens=32, messages=PROMPT) as stream:
            stream.get_final_message()
        gpt.chat.completions.create(model="gpt-5-mini", messages=PROMPT)
        for _ in gpt.chat.completions.create(model="gpt-5-mini", messages=PROMPT, stream=True):
            pass
        for _ in gpt.chat.completions.create(model="haiku", messages=PROMPT, stream=True):
            pass  # across shapes
        with pytest.raises(anthropic.NotFoundError):  # an error answer is a request too
            claude.messages.create(model="nonexistent-model", max_tokens=32, messages=PROMPT)
        leave_a_stream_midway(gateway.url, token)

    calls()  # warm caches and pools, outside the measurement
    gc.collect()
    gc.disable()
    try:
        calls()
        gateway.events()  # every call recorded
        deadline = time.monotonic() + 5
        while (left := alive_request_objects()) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        gc.enable()
    assert left == []


def leave_a_stream_midway(url: str, token: str) -> None:
    body = {"model": "haiku", "max_tokens": 32, "stream": True, "messages": [
        {"role": "user", "content": "Say hello [[fault:hang]]"}
    ]}  # fmt: skip
    headers = {"x-api-key": token}
    with httpx.stream("POST", f"{url}/v1/messages", json=body, headers=headers) as response:
        for line in response.iter_lines():
            if line == "event: ping":
                return


def alive_request_objects() -> list[str]:
    return [
        type(o).__name__ for o in gc.get_objects() if isinstance(o, ASGIRequest | HttpResponseBase)
    ]
