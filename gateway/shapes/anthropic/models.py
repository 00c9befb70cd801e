"""What each Claude model takes, where the request must differ by model.

Structured outputs (`output_config.format`) are generally available from the Claude 4.5
models on (https://platform.claude.com/docs/en/build-with-claude/structured-outputs);
older models get the forced-tool fallback. Adaptive thinking with an effort
(`thinking: {type: "adaptive"}`, `output_config.effort`) is the way to ask Claude
Opus/Sonnet 4.6 and later to reason, and the only way for Opus 4.7, which refuses
`budget_tokens`; older models take a `budget_tokens`
(https://platform.claude.com/docs/en/build-with-claude/adaptive-thinking).
Listed by what came BEFORE each feature, so a new model gets the current API.
"""

from __future__ import annotations

BEFORE_STRUCTURED_OUTPUTS = (
    "claude-2",
    "claude-instant",
    "claude-3",
    "claude-sonnet-4-0",
    "claude-sonnet-4-2025",
    "claude-opus-4-0",
    "claude-opus-4-2025",
    "claude-opus-4-1",
)
BEFORE_ADAPTIVE_THINKING = (
    *BEFORE_STRUCTURED_OUTPUTS,
    "claude-haiku-4-5",
    "claude-sonnet-4-5",
    "claude-opus-4-5",
)


def takes_structured_outputs(model: str) -> bool:
    return not model.startswith(BEFORE_STRUCTURED_OUTPUTS)


def thinks_adaptively(model: str) -> bool:
    return not model.startswith(BEFORE_ADAPTIVE_THINKING)
