"""Token counts the provider bills but never reported, estimated and marked `estimated`.

A call cut short (the client left, the provider's stream broke off) can end before the
provider's usage arrived, yet the provider bills what it processed. Only what was not
reported is estimated; a count the provider did report is kept, 0 included.

- input: the characters of every string in the body as sent upstream (messages, system
  prompt, tool definitions and results; the model name, base64 media and signatures
  left out) / 4, rounded up, plus 3 tokens per message and 3 for the reply's priming
  (OpenAI's rule for chat formatting). Four characters a token is the providers' own
  rule of thumb for English; JSON keys of the body are not counted.
- output: the characters of the text seen (text, thinking, tool arguments) / 4, at least 1.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from analytics.usage import Usage

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 3
REPLY_PRIMING = 3
# base64 media, thinking signatures, redacted thinking and OpenAI's encrypted reasoning
SKIPPED_KEYS = frozenset({"data", "signature", "encrypted_content"})


def with_input(usage: Usage, sent_body: dict[str, Any] | None) -> Usage:
    if sent_body is None:  # never sent: nothing was billed
        return usage
    return replace(usage, input_tokens=input_tokens(sent_body), estimated=True)


def with_output(usage: Usage, text_chars: int) -> Usage:
    output = max(usage.output_tokens, 1, -(-text_chars // CHARS_PER_TOKEN))
    return replace(usage, output_tokens=output, estimated=True)


def input_tokens(body: dict[str, Any]) -> int:
    chars = 0
    pending: list[Any] = [v for k, v in body.items() if k != "model"]
    while pending:  # a loop, not recursion: bodies may nest deeper than Python's stack
        value = pending.pop()
        if isinstance(value, str):
            if not value.startswith("data:"):  # a data: URL is an image, not text
                chars += len(value)
        elif isinstance(value, dict):
            pending.extend(v for k, v in value.items() if k not in SKIPPED_KEYS)
        elif isinstance(value, list):
            pending.extend(value)
    messages = body.get("messages", body.get("input"))  # Responses API items are turns too
    count = len(messages) if isinstance(messages, list) else 0
    return -(-chars // CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE * count + REPLY_PRIMING
