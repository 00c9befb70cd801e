"""Upstream provider adapters, in one explicit registry (no plugin discovery).

Adding a provider: copy `anthropic.py`, add one line here, add
`tests/fixtures/<name>/`; the conformance tests pick it up from `PROVIDERS`.
"""

from __future__ import annotations

from gateway.providers.anthropic import Anthropic
from gateway.providers.base import Provider, UpstreamRequest, Usage
from gateway.providers.openai import OpenAI

__all__ = ["PROVIDERS", "Provider", "UpstreamRequest", "Usage"]

# OpenAI-compatible servers (vLLM, Ollama, OpenRouter, ...) use "openai" with their own base URL.
PROVIDERS: dict[str, Provider] = {
    "anthropic": Anthropic(),
    "openai": OpenAI(),
}
