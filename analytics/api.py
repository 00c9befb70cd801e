"""The analytics API on `metis serve` (django-ninja, with its OpenAPI docs)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from ninja import NinjaAPI

from analytics import versioning

api = NinjaAPI(title="Metis analytics", version=versioning.LATEST, urls_namespace="analytics")


@api.exception_handler(versioning.UnsupportedVersion)
def unsupported_version(request: HttpRequest, exc: versioning.UnsupportedVersion) -> HttpResponse:
    response = JsonResponse({"detail": str(exc)}, status=400)
    response[versioning.HEADER] = versioning.LATEST
    return response


@api.get("/health", tags=["meta"])
def health(request: HttpRequest, response: HttpResponse) -> dict:
    version = versioning.negotiate(request.headers.get(versioning.HEADER))
    for name, value in versioning.response_headers(version).items():
        response[name] = value
    return {"status": "ok", "api_version": version}
