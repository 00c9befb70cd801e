from __future__ import annotations

import anthropic
import openai


def test_anthropic_sdk_message_is_forwarded_and_recorded(gateway, token):
    client = anthropic.Anthropic(base_url=gateway.url, api_key=token, max_retries=0)
    message = client.messages.create(
        model="haiku", max_tokens=64, messages=[{"role": "user", "content": "Say hello"}]
    )
    assert message.content[0].text
    completed = gateway.events("llm.call_completed")
    assert completed[0]["model"] == "claude-haiku-4-5"


def test_openai_sdk_stream_is_relayed(gateway, token):
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=token, max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model="gpt-5-mini", stream=True, messages=[{"role": "user", "content": "hi"}]
        )
    )
    assert chunks
    completed = gateway.events("llm.call_completed")
    assert completed[0]["output_tokens"] > 0
