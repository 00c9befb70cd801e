"""`POST /v1/embeddings`: OpenAI's embeddings API, for OpenAI and OpenAI-compatible models.

Same shape only (Anthropic has no embeddings API): the client's body goes to the
provider's `/v1/embeddings` as sent (re-encoded only when an alias named the model).
Like any call it is authenticated before its body is read, held to budgets and rate
limits, priced (input tokens alone: `usage.prompt_tokens`) and recorded, with
`operation: "embeddings"` on its `llm.call_completed` and `inbound_shape: "openai"`.
The worst case a hard cap reserves is every body byte as an input token, since an
embedding has no output.
"""

from __future__ import annotations

import time
from typing import Any

from django.http import HttpRequest, HttpResponse

from analytics.writer import new_id
from gateway import auth, proxy, routing
from gateway.calls import Call
from gateway.errors import bad_request
from gateway.shapes import SHAPES, Shape
from gateway.shapes.base import read_object


async def embeddings(request: HttpRequest) -> HttpResponse:
    started = time.perf_counter()
    request.metis_shape = Shape.OPENAI
    caller = getattr(request, "metis_caller", None) or await auth.authenticate(request.headers)
    body = parse(request)
    route = await routing.route(body, caller, Shape.OPENAI)
    if route.upstream.adapter.name != "openai":
        raise bad_request(
            f"{route.model!r} is served by {route.upstream.name}, which has no embeddings API. "
            "Name an OpenAI or OpenAI-compatible embedding model, such as "
            "text-embedding-3-small.",
            param="model",
        )
    call = Call(f"metis_{new_id()}", caller, route, Shape.OPENAI, False, started,
                operation="embeddings")  # fmt: skip
    exchange = proxy.same_shape(request, body, call, SHAPES[Shape.OPENAI])
    response = await proxy.send(call, proxy.upstream_request(request, route, exchange), body)
    return await proxy.respond(response, call, None)


def parse(request: HttpRequest) -> dict[str, Any]:
    """What the gateway itself needs: a JSON object naming a model and some input.
    The provider checks the rest (input types, dimensions, encoding_format)."""
    body = read_object(request, Shape.OPENAI)
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise bad_request("model is required: an embedding model such as "
                          "text-embedding-3-small.", param="model")  # fmt: skip
    if body.get("input") in (None, "", []):
        raise bad_request("input is required: a string or a list of strings to embed.",
                          param="input")  # fmt: skip
    return body
