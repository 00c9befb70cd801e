"""The Anthropic Python SDK through Metis: swap the base URL and the key, nothing else.

GATEWAY_URL=http://127.0.0.1:8422 GATEWAY_KEY=gw_… python anthropic_sdk.py
"""

from __future__ import annotations

import os

from anthropic import Anthropic

client = Anthropic(base_url=os.environ["GATEWAY_URL"], api_key=os.environ["GATEWAY_KEY"])

message = client.messages.create(
    model="haiku",  # an alias; or claude-haiku-4-5, anthropic:claude-haiku-4-5, …
    max_tokens=64,
    messages=[{"role": "user", "content": "Say hello in one word."}],
)
print(message.content[0].text)

with client.messages.stream(
    model="haiku",
    max_tokens=64,
    messages=[{"role": "user", "content": "Count to five."}],
) as stream:
    for text in stream.text_stream:
        print(text, end="", flush=True)
print()
