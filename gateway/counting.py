"""`POST /v1/messages/count_tokens`: Anthropic's free token count, held to the key's limits.

The provider charges nothing for it, but it is still a request on the operator's
account: it holds $0 against budgets, so rate limits apply and a budget with nothing
left refuses it (`budgets.check_free`). Each one, refused or not, is recorded as one
`llm.tokens_counted` event rather than `llm.call_completed`: it generates nothing, so it
stays out of call counts, latencies and the seeds' queries, which are about calls that
generate.
"""

from __future__ import annotations

import contextlib
import time

import orjson
from django.http import HttpRequest, HttpResponse

from analytics.writer import PendingEvent, make_event, new_id, writer
from gateway import auth, budgets, calls, metrics, proxy, routing, upstream
from gateway.calls import Call
from gateway.errors import bad_request
from gateway.exchange import encode
from gateway.providers.base import token_count
from gateway.shapes import Shape, read_body


async def count_tokens(request: HttpRequest) -> HttpResponse:
    started = time.perf_counter()
    request.metis_shape = Shape.ANTHROPIC
    caller = getattr(request, "metis_caller", None) or await auth.authenticate(request.headers)
    body = read_body(request, Shape.ANTHROPIC)  # max_tokens is not needed to count
    route = await routing.route(body, caller, Shape.ANTHROPIC)
    if route.upstream.shape is not Shape.ANTHROPIC:  # OpenAI has no counterpart
        raise bad_request(f"Counting tokens is not available for {route.model!r}.", param="model")
    call = Call(f"metis_{new_id()}", caller, route, Shape.ANTHROPIC, False, started)
    changed = body.get("model") != route.model
    body["model"] = route.model
    upstream_request = route.upstream.adapter.build_request(
        path=request.get_full_path(),
        body=encode(body) if changed else request.body,
        client_headers=request.headers,
        api_key=caller.provider_key or route.upstream.api_key,
        base_url=route.upstream.base_url,
    )
    content = b""
    try:
        call.reservation = await budgets.check_free(caller.key.id, call.request_id)
        call.upstream_started = time.perf_counter()
        response, call.retries = await upstream.send(upstream_request, provider=route.upstream.name)
        try:
            content = await response.read()
        finally:
            response.release()
        call.status, call.upstream_request_id = response.status, proxy.upstream_request_id(response)
        if response.status != 200:
            call.error_class = f"UPSTREAM_{response.status}"
    except BaseException as exc:
        proxy.classify(call, exc)
        raise
    finally:
        call.finished = time.perf_counter()
        budgets.settle(call.reservation, call.cost_usd, call.usage)
        writer.submit([counted_event(call, content)])
        metrics.token_counts.labels(metrics.status_label(call.status)).inc()
    http = HttpResponse(content, status=response.status)
    for name, value in upstream.relayed_headers(response).items():
        http[name] = value
    http["x-metis-request-id"] = call.request_id
    return http


def counted_event(call: Call, content: bytes) -> PendingEvent:
    counted = None
    if call.status == 200:
        with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
            counted = token_count(orjson.loads(content).get("input_tokens"))
    payload = {
        **calls.identity_of(call),
        "key_name": call.caller.key.name,
        "counted_input_tokens": counted,
        "cost_usd": orjson.Fragment(b"0"),  # free at the provider
        "latency_ms": call.latency_ms,
        "status": call.status,
        "error_class": call.error_class,
        "retries": call.retries,
        "upstream_request_id": call.upstream_request_id,
    }
    return make_event("llm.tokens_counted", payload, gateway_key_id=call.caller.key.id)
