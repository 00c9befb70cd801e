"""OpenAI (https://platform.openai.com/docs/api-reference), also used for
OpenAI-compatible servers (vLLM, Ollama, OpenRouter, ...) at their own base URL.

It serves two wire shapes: Chat Completions (preferred for calls translated from
another shape, since every compatible server speaks it) and the Responses API.
Reading usage, and asking a stream for it, belong to those shapes:
gateway/shapes/openai_chat.py and gateway/shapes/openai_responses.py.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.providers.base import UpstreamRequest, forwarded_headers, join_url
from gateway.shapes.base import Shape

PATHS = {Shape.OPENAI: "/v1/chat/completions", Shape.RESPONSES: "/v1/responses"}


class OpenAI:
    name = "openai"
    shapes = (Shape.OPENAI, Shape.RESPONSES)

    def generate_path(self, model: str, shape: Shape, *, stream: bool) -> str:
        return PATHS[shape]

    def build_request(
        self,
        *,
        path: str,
        body: bytes,
        client_headers: Mapping[str, str],
        api_key: str,
        base_url: str,
        method: str = "POST",
    ) -> UpstreamRequest:
        headers = forwarded_headers(client_headers, prefixes=("openai-",))
        if body:
            headers.setdefault("content-type", "application/json")
        headers["authorization"] = f"Bearer {api_key}"
        return UpstreamRequest(method, join_url(base_url, path), headers, body)
