"""Request pieces the SDK tests share, in each API's own shape."""

from __future__ import annotations

HELLO = [{"role": "user", "content": "Say hello"}]

_WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
ANTHROPIC_WEATHER_TOOL = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": _WEATHER_SCHEMA,
}
OPENAI_WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": _WEATHER_SCHEMA,
    },
}
