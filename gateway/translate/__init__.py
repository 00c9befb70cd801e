"""Translation between the Anthropic Messages and OpenAI Chat Completions shapes.

Pure functions and stateful stream translators, no I/O, used only when a client
calls a model served in the other shape (`gateway/crossing.py`):

- `requests`:  request bodies, both ways; refusals name the field they cannot map.
- `responses`: whole responses and usage, both ways.
- `streams`:   SSE event by event, both ways.
- `errors`:    upstream error bodies in the caller's shape.

Anthropic: https://docs.anthropic.com/en/api/messages
OpenAI:    https://platform.openai.com/docs/api-reference/chat
"""
