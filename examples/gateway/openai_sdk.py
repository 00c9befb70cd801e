"""The OpenAI Python SDK through Metis: the gateway URL with /v1, and the gateway key.

GATEWAY_URL=http://127.0.0.1:8422 GATEWAY_KEY=gw_… python openai_sdk.py
"""

from __future__ import annotations

import os

from openai import OpenAI

client = OpenAI(base_url=f"{os.environ['GATEWAY_URL']}/v1", api_key=os.environ["GATEWAY_KEY"])

completion = client.chat.completions.create(
    model="gpt-5-mini",
    messages=[{"role": "user", "content": "Say hello in one word."}],
)
print(completion.choices[0].message.content)

stream = client.chat.completions.create(
    model="gpt-5-mini",
    messages=[{"role": "user", "content": "Count to five."}],
    stream=True,
)
for chunk in stream:
    if chunk.choices:
        print(chunk.choices[0].delta.content or "", end="", flush=True)
print()
