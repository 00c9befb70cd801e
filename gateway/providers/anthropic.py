"""Anthropic (https://docs.anthropic.com/en/api/messages): serves the Messages shape.

Quirks this adapter exists for:
- Auth is `x-api-key`; `anthropic-version` is required, so 2023-06-01 is sent
  when the client sent none. `anthropic-*` client headers (betas) pass through.

Reading its usage belongs to the wire shape: gateway/shapes/anthropic.py.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.providers.base import UpstreamRequest, forwarded_headers, join_url
from gateway.shapes.base import Shape

DEFAULT_VERSION = "2023-06-01"


class Anthropic:
    name = "anthropic"
    shapes = (Shape.ANTHROPIC,)

    def generate_path(self, model: str, shape: Shape, *, stream: bool) -> str:
        return "/v1/messages"

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
        headers = forwarded_headers(client_headers, prefixes=("anthropic-",))
        headers.setdefault("anthropic-version", DEFAULT_VERSION)
        if body:
            headers.setdefault("content-type", "application/json")
        headers["x-api-key"] = api_key
        return UpstreamRequest(method, join_url(base_url, path), headers, body)
