#!/bin/sh
# Both shapes with curl through Metis.
#     GATEWAY_URL=http://127.0.0.1:8422 GATEWAY_KEY=gw_… sh curl.sh
set -eu

curl -sS --fail-with-body "$GATEWAY_URL/v1/messages" \
  -H "x-api-key: $GATEWAY_KEY" \
  -H "anthropic-version: 2023-06-01" \
  -H "content-type: application/json" \
  -d '{"model": "haiku", "max_tokens": 64,
       "messages": [{"role": "user", "content": "Say hello in one word."}]}'
echo

curl -sS --fail-with-body "$GATEWAY_URL/v1/chat/completions" \
  -H "authorization: Bearer $GATEWAY_KEY" \
  -H "content-type: application/json" \
  -d '{"model": "gpt-5-mini",
       "messages": [{"role": "user", "content": "Say hello in one word."}]}'
echo
