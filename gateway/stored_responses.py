"""The Responses API's stored-response paths, passed through to OpenAI.

GET and DELETE /v1/responses/{id}, GET /v1/responses/{id}/input_items and
POST /v1/responses/{id}/cancel read state that only the provider that answered keeps,
so they go, authenticated, to the OpenAI upstream the key can use (the one its allowed
models name, else `openai`), with the client's own OpenAI key in pass-through mode.
The provider's answer is relayed unchanged. They cost nothing, so they are not
recorded as calls.

Answers a Claude model gave through translation are never stored (their ids start
`resp_metis_`): these paths answer a 404 that says so.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from gateway import auth, routing, upstream
from gateway.auth import Caller
from gateway.errors import GatewayError
from gateway.routing import Upstream
from gateway.shapes import Shape
from gateway.shapes.openai_responses import TRANSLATED_ID_PREFIX


async def relay(request: HttpRequest, response_id: str) -> HttpResponse:
    request.metis_shape = Shape.RESPONSES
    caller = getattr(request, "metis_caller", None) or await auth.authenticate(request.headers)
    if response_id.startswith(TRANSLATED_ID_PREFIX):
        raise GatewayError(
            404,
            f"Response {response_id!r} was answered by a model served in another shape "
            f"(translated by Metis), and Metis does not store such responses: it cannot be "
            f"retrieved, listed, cancelled or deleted, nor used as previous_response_id.",
            param="response_id",
            code="response_not_stored",
        )
    target = await openai_upstream(caller)
    api_key = routing.api_key_for(target, caller, f"response {response_id}")
    sent = target.adapter.build_request(
        path=request.get_full_path(),
        body=request.body if request.method == "POST" else b"",
        client_headers=request.headers,
        api_key=api_key,
        base_url=target.base_url,
        method=request.method,
    )
    response, _ = await upstream.send(sent, provider=target.name)
    headers = upstream.relayed_headers(response)
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        # GET ?stream=true replays a response's events: relayed as they come.
        return StreamingHttpResponse(_chunks(response), status=response.status, headers=headers)
    try:
        content = await response.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise GatewayError(502, f"The provider's answer broke off: {exc!r}") from None
    finally:
        response.release()
    return HttpResponse(content, status=response.status, headers=headers)


async def openai_upstream(caller: Caller) -> Upstream:
    """The upstream these paths go to: the first Responses-speaking upstream the key's
    allowed models name, else `openai`; a 403 when the key may use none."""
    cat = await routing.catalog()
    if not caller.key.allowed_models:
        return cat.upstreams["openai"]
    for entry in caller.key.allowed_models:
        try:
            target, _ = routing.resolve_name(entry, cat)
        except GatewayError:
            continue
        if Shape.RESPONSES in target.adapter.shapes:
            return target
    raise GatewayError(
        403,
        f"Gateway key {caller.key.id} may use no OpenAI model, so it has no stored "
        f"responses to reach.",
    )


async def _chunks(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.content.iter_any():
            yield chunk
    finally:
        response.close()
