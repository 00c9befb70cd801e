"""The gateway's URL surface: each endpoint binds a path, a shape and auth, nothing more."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI

from analytics import versioning

api = NinjaAPI(title="Metis gateway", version=versioning.LATEST, urls_namespace="gateway")


@api.get("/healthz", tags=["meta"])
def healthz(request: HttpRequest, response: HttpResponse) -> dict:
    version = versioning.negotiate(request.headers.get(versioning.HEADER))
    for name, value in versioning.response_headers(version).items():
        response[name] = value
    return {"status": "ok", "api_version": version}
