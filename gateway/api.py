"""The gateway's URL surface: each endpoint binds a path, a shape and auth, nothing more."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from ninja import NinjaAPI
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from analytics import versioning
from gateway import auth, counting, metrics, routing, shapes, stored_responses
from gateway.embeddings import embeddings
from gateway.errors import GatewayError
from gateway.proxy import forward
from gateway.shapes import SHAPES, Shape

api = NinjaAPI(
    title="Metis gateway",
    version=versioning.LATEST,
    urls_namespace="gateway",
    docs_url=None,
    openapi_url=None,
)


@api.exception_handler(GatewayError)
def gateway_error(request: HttpRequest, exc: GatewayError) -> HttpResponse:
    return shapes.render(exc, getattr(request, "metis_shape", Shape.ANTHROPIC))


@api.exception_handler(versioning.UnsupportedVersion)
def unsupported_version(request: HttpRequest, exc: versioning.UnsupportedVersion) -> HttpResponse:
    return JsonResponse(
        {"detail": str(exc)}, status=400, headers={versioning.HEADER: versioning.LATEST}
    )


@api.post("/v1/messages")
async def messages(request: HttpRequest) -> HttpResponse:
    return await forward(request, Shape.ANTHROPIC)


@api.post("/v1/messages/count_tokens")
async def count_tokens(request: HttpRequest) -> HttpResponse:
    return await counting.count_tokens(request)


@api.post("/v1/chat/completions")
async def chat_completions(request: HttpRequest) -> HttpResponse:
    return await forward(request, Shape.OPENAI)


@api.post("/v1/embeddings")
async def create_embeddings(request: HttpRequest) -> HttpResponse:
    return await embeddings(request)


@api.post("/v1/responses")
async def responses(request: HttpRequest) -> HttpResponse:
    return await forward(request, Shape.RESPONSES)


# The POST endpoints gateway/handler.py calls directly, as Django and ninja would but
# without their URL resolving and wrapping: the same views, their errors answered by the
# same handlers (gateway_error above; any other exception by Django, then server_error).
DIRECT = {
    "/v1/messages": messages,
    "/v1/messages/count_tokens": count_tokens,
    "/v1/chat/completions": chat_completions,
    "/v1/embeddings": create_embeddings,
    "/v1/responses": responses,
}


@api.api_operation(["GET", "DELETE"], "/v1/responses/{response_id}")
async def stored_response(request: HttpRequest, response_id: str) -> HttpResponse:
    return await stored_responses.relay(request, response_id)


@api.get("/v1/responses/{response_id}/input_items")
async def stored_input_items(request: HttpRequest, response_id: str) -> HttpResponse:
    return await stored_responses.relay(request, response_id)


@api.post("/v1/responses/{response_id}/cancel")
async def cancel_response(request: HttpRequest, response_id: str) -> HttpResponse:
    return await stored_responses.relay(request, response_id)


@api.get("/v1/models")
async def models(request: HttpRequest) -> HttpResponse:
    request.metis_shape = shape = shape_by_headers(request)
    caller = await auth.authenticate(request.headers)
    listed = await routing.available_models(caller)
    return JsonResponse(SHAPES[shape].models_page(listed))


@api.get("/v1/models/{path:model_id}")
async def model(request: HttpRequest, model_id: str) -> HttpResponse:
    request.metis_shape = shape = shape_by_headers(request)
    caller = await auth.authenticate(request.headers)
    for entry in await routing.available_models(caller):
        if entry.id == model_id:
            return JsonResponse(SHAPES[shape].model_object(entry))
    raise GatewayError(404, f"Model {model_id!r} is not available to this key.", param="model")


def shape_by_headers(request: HttpRequest) -> Shape:
    return shapes.shape_for(request.path, request.headers)


@api.get("/healthz")
def healthz(request: HttpRequest, response: HttpResponse) -> dict:
    version = versioning.negotiate(request.headers.get(versioning.HEADER))
    for name, value in versioning.response_headers(version).items():
        response[name] = value
    return {"status": "ok", "api_version": version}


@api.api_operation(["GET", "HEAD"], "/")
def root(request: HttpRequest) -> HttpResponse:
    # Some clients probe the base URL before their first call: answer at once.
    return HttpResponse(b"Metis gateway\n", content_type="text/plain")


@api.get("/metrics")
def prometheus(request: HttpRequest) -> HttpResponse:
    request.metis_shape = shape_by_headers(request)
    metrics.check_access(request.META.get("REMOTE_ADDR", ""), request.headers)
    return HttpResponse(generate_latest(metrics.registry), content_type=CONTENT_TYPE_LATEST)


def server_error(request: HttpRequest) -> HttpResponse:
    """Django's handler500 for the gateway: the failure in the caller's shape, never HTML."""
    shape = getattr(request, "metis_shape", None) or shape_by_headers(request)
    message = "The gateway failed on this request; the error is in its log."
    return shapes.render(GatewayError(500, message, error_class="GATEWAY_ERROR"), shape)


# -- everything else: a clear error in the caller's shape, not Django's HTML page ----------

SERVED = {
    **dict.fromkeys(shapes.BODY_ENDPOINTS, "POST"),
    "/v1/models": "GET",
    "/healthz": "GET",
    "/metrics": "GET",
    "/": "GET",
}
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


async def refuse(request: HttpRequest) -> HttpResponse:
    path = request.path
    request.metis_shape = shape_by_headers(request)
    if allowed := SERVED.get(path):
        raise GatewayError(405, f"{request.method} is not allowed on {path}; use {allowed}.",
                           headers={"Allow": allowed})  # fmt: skip
    served = ", ".join(f"{method} {url}" for url, method in SERVED.items() if url.startswith("/v1"))
    raise GatewayError(404, f"Metis does not serve {request.method} {path}. It serves {served}.",
                       code="unknown_url")  # fmt: skip


for _path, _allowed in SERVED.items():
    api.api_operation([m for m in METHODS if m != _allowed], _path)(refuse)

# The stored-response paths, and their methods; POST /v1/responses/compact and the like
# are paths Metis does not serve, not stored responses.
STORED = {
    "/v1/responses/{response_id}": "GET, DELETE",
    "/v1/responses/{response_id}/input_items": "GET",
    "/v1/responses/{response_id}/cancel": "POST",
}


def refuse_stored(allowed: str) -> Callable[..., Awaitable[HttpResponse]]:
    async def refuse_method(request: HttpRequest, response_id: str) -> HttpResponse:
        if request.path.count("/") == 3 and request.method == "POST":
            return await refuse(request)
        request.metis_shape = Shape.RESPONSES
        raise GatewayError(405, f"{request.method} is not allowed on {request.path}; use "
                           f"{allowed}.", headers={"Allow": allowed})  # fmt: skip

    return refuse_method


for _path, _allowed in STORED.items():
    api.api_operation([m for m in METHODS if m not in _allowed], _path)(refuse_stored(_allowed))


@api.api_operation(METHODS, "/{path:rest}")
async def unknown_path(request: HttpRequest, rest: str) -> HttpResponse:
    return await refuse(request)
