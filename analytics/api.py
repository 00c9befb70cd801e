"""The analytics API on `metis serve` (django-ninja, with its OpenAPI docs).

Every number comes from `analytics.queries`; this module picks the viewer (who may see
what, `analytics.access`), parses the parameters and renders JSON. Money is rendered as
a JSON number with its exact decimal digits.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from ninja import NinjaAPI, Query
from ninja.errors import ValidationError
from ninja.renderers import BaseRenderer

from analytics import access, budgets, queries, versioning
from analytics.scope import GROUP_BY, Scope, ScopeError, Viewer, parse_scope

MAX_PAGE_SIZE = 500


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(format(value.normalize(), "f"))
    if isinstance(value, frozenset | set):
        return sorted(value)
    raise TypeError


class JSONRenderer(BaseRenderer):
    media_type = "application/json"

    def render(self, request: HttpRequest, data: Any, *, response_status: int) -> bytes:
        return orjson.dumps(data, default=_default)


api = NinjaAPI(
    title="Metis analytics",
    version=versioning.LATEST,
    urls_namespace="analytics",
    renderer=JSONRenderer(),
)


class NotAuthenticated(Exception):
    """No login, no valid bearer token, and not local mode."""


def _version_headers(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    try:
        version = versioning.negotiate(request.headers.get(versioning.HEADER))
    except versioning.UnsupportedVersion:
        version = versioning.LATEST
    for name, value in versioning.response_headers(version).items():
        response[name] = value
    return response


@api.exception_handler(versioning.UnsupportedVersion)
def unsupported_version(request: HttpRequest, exc: versioning.UnsupportedVersion) -> HttpResponse:
    response = api.create_response(request, {"detail": str(exc)}, status=400)
    response[versioning.HEADER] = versioning.LATEST
    return response


@api.exception_handler(NotAuthenticated)
def not_authenticated(request: HttpRequest, exc: NotAuthenticated) -> HttpResponse:
    detail = "Sign in (/login/) or send a gateway token as Authorization: Bearer gw_…"
    response = api.create_response(request, {"detail": detail}, status=401)
    response["WWW-Authenticate"] = 'Bearer realm="metis"'
    return _version_headers(request, response)


@api.exception_handler(ScopeError)
def bad_parameter(request: HttpRequest, exc: ScopeError) -> HttpResponse:
    error = {"type": "value_error", "loc": ["query", exc.param], "msg": exc.message}
    return _version_headers(request, api.create_response(request, {"detail": [error]}, status=422))


@api.exception_handler(ValidationError)
def invalid(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    response = api.create_response(request, {"detail": exc.errors}, status=422)
    return _version_headers(request, response)


def _answer(
    request: HttpRequest,
    response: HttpResponse,
    build: Callable[[Viewer, Scope], dict],
) -> dict:
    version = versioning.negotiate(request.headers.get(versioning.HEADER))
    for name, value in versioning.response_headers(version).items():
        response[name] = value
    viewer = access.viewer_for(request)
    if viewer is None:
        raise NotAuthenticated
    scope = parse_scope(request.GET, timezone.now())
    return build(viewer, scope)


def _window(scope: Scope) -> dict[str, datetime]:
    return {"from": scope.start, "to": scope.end}


# The query parameters, for validation of their types and the OpenAPI docs; the values
# are read by `parse_scope` so the API and the dashboard parse them alike.
Window = Query(
    None,
    description="1h, 24h (default), 7d, 30d, today, this_week, this_month or last_month "
    "(calendar windows in METIS_TIME_ZONE, as quota periods); or give from/to",
)
From = Query(None, alias="from", description="ISO 8601 date or datetime (UTC if naive)")
To = Query(None, description="ISO 8601 date or datetime; default now")
Filter = Query(None, description="exact match")
UserFilter = Query(None, description="an account: the calls of the keys this user owns")
LabelFilter = Query(None, description="the x-metis-user label the calls carried")


@api.get("/health", tags=["meta"])
def health(request: HttpRequest, response: HttpResponse) -> dict:
    version = versioning.negotiate(request.headers.get(versioning.HEADER))
    for name, value in versioning.response_headers(version).items():
        response[name] = value
    return {"status": "ok", "api_version": version}


@api.get("/analytics/cost", tags=["analytics"])
def cost(
    request: HttpRequest,
    response: HttpResponse,
    window: str | None = Window,
    from_: str | None = From,
    to: str | None = To,
    group_by: str | None = Query(None, description=", ".join(GROUP_BY)),
    gateway_key: str | None = Filter,
    user: str | None = UserFilter,
    label: str | None = LabelFilter,
    team: str | None = Filter,
    workspace: str | None = Filter,
) -> dict:
    """Totals (cost, calls, tokens, errors, cancelled, unpriced, p50/p95 latency) over the
    window, and one row per group with `group_by`.

    Each total and group has `cache`, the prompt cache's figures: `hit_rate` = cache-read
    tokens ÷ input tokens, where input tokens are every prompt token (uncached, cache reads
    and cache writes), to 4 decimal places, null without input; `read_tokens`,
    `write_5m_tokens`, `write_1h_tokens`; in USD, `write_5m_usd`, `write_1h_usd`,
    `saved_usd` (the reads at the uncached input price, less what they cost),
    `write_premium_usd` (the writes, less the same tokens at the uncached input price) and
    `net_saved_usd` (saved - premium)."""
    group = (group_by or "").strip() or None
    return _answer(request, response, lambda v, s: queries.cost(v, s, group))


@api.get("/analytics/by_key", tags=["analytics"])
def by_key(
    request: HttpRequest, response: HttpResponse, window: str | None = Window,
    from_: str | None = From, to: str | None = To,
) -> dict:  # fmt: skip
    """Spend per gateway key, with its inbound-shape counts, last call, the x-metis-user
    labels its calls carried, and its own quota status."""
    return _answer(
        request, response, lambda v, s: {"window": _window(s), "keys": budgets.by_key(v, s)}
    )


@api.get("/analytics/by_user", tags=["analytics"])
def by_user(
    request: HttpRequest, response: HttpResponse, window: str | None = Window,
    from_: str | None = From, to: str | None = To,
) -> dict:  # fmt: skip
    """Spend per account: the calls of the keys each user owns, whatever x-metis-user label
    they carried, as the user's quota counts them (null = keys with no owner)."""
    return _answer(
        request, response, lambda v, s: {"window": _window(s), "users": budgets.by_user(v, s)}
    )


@api.get("/analytics/by_team", tags=["analytics"])
def by_team(
    request: HttpRequest, response: HttpResponse, window: str | None = Window,
    from_: str | None = From, to: str | None = To,
) -> dict:  # fmt: skip
    """Spend per team, each with its users inline (`by_user`)."""
    return _answer(
        request, response, lambda v, s: {"window": _window(s), "teams": budgets.by_team(v, s)}
    )


@api.get("/analytics/activity", tags=["analytics"])
def activity(
    request: HttpRequest,
    response: HttpResponse,
    window: str | None = Window,
    from_: str | None = From,
    to: str | None = To,
    gateway_key: str | None = Filter,
    user: str | None = UserFilter,
    label: str | None = LabelFilter,
    team: str | None = Filter,
    workspace: str | None = Filter,
    page: int = 1,
    page_size: int = Query(50, description=f"at most {MAX_PAGE_SIZE}"),
) -> dict:
    """Recent calls, newest first, paged (`next_page` is null on the last page)."""

    def build(viewer: Viewer, scope: Scope) -> dict:
        if page < 1:
            raise ScopeError("page", "page starts at 1")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ScopeError("page_size", f"page_size must be 1 to {MAX_PAGE_SIZE}")
        result = queries.activity(viewer, scope, page=page, page_size=page_size)
        return {"window": _window(scope), "filters": scope.filters, **result}

    return _answer(request, response, build)
