"""A fake Anthropic Messages, OpenAI Chat Completions and OpenAI Responses provider, served
over real HTTP.

It backs the test suite, `metis demo` and the benchmarks. Replies are deterministic: the
same request, streamed or not, gives the same text and the same usage.

Endpoints: POST /v1/messages (also ?beta=true), POST /v1/messages/count_tokens,
POST /v1/chat/completions, POST /v1/responses (and GET|DELETE /v1/responses/{id},
GET /v1/responses/{id}/input_items, POST /v1/responses/{id}/cancel), GET /v1/models
(Anthropic shape when `anthropic-version` is sent), GET|DELETE /_mock/requests (the last
1000 calls), POST /_mock/reset (log, faults, cache, stored responses, ledger).

The organisation reports, computed from a ledger of the calls served (reports.py):
GET /v1/organizations/analytics/usage and /cost and /v1/organizations/api_keys (Anthropic),
GET /v1/organization/usage/completions, /usage/embeddings, /costs and the project key lists
(OpenAI); `make_app(report_page_size=N)` pages them N rows (buckets) at a time.

Steering a reply from the last user message (for clients that cannot set headers):
  [[tool]]                    call the first tool, arguments built from its input schema
  [[tool:NAME {"k": "v"}]]    call NAME with exactly these arguments
  [[fault:SPEC id=ID]]        the same as the x-mock-fault / x-mock-fault-id headers

Faults (`x-mock-fault: SPEC`): comma-separated parts, optionally `*N` to fire only for the
first N requests with that spec and `x-mock-fault-id`:
  429 | 500 | 529 | any 3-digit status    an error in the provider's format (429 has retry-after)
  slow:S                                  wait S seconds before the first byte
  cut:N                                   streams: close after N events; bodies: after half
  hang                                    send a few events, then stall until the client leaves
  zero-output                             a normal reply whose usage reports 0 output tokens
  linger:S                                streams: end the body S seconds after the last event

Other headers: x-mock-token-delay (seconds per streamed piece), x-mock-fixed: 1 (a precomputed
reply, for benchmarks), x-mock-gzip: 1 (gzip the response if the client accepts it).
"""

from __future__ import annotations

from mock_provider.server import MockProviderThread, make_app, run, serve

__all__ = ["MockProviderThread", "make_app", "run", "serve"]
