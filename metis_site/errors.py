"""`metis serve`'s last-resort error pages: JSON for the API, plain pages for a browser.

Django's defaults are HTML ("Server Error (500)"), which an API client cannot read; they
apply only where a view did not answer itself (an uncaught exception, a request Django
refuses before any view: a Host not in METIS_ALLOWED_HOSTS, too many form fields).
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

from metis_site.server import is_page


def answer(
    request: HttpRequest, status: int, detail: str, page: Callable[[], HttpResponse]
) -> HttpResponse:
    if is_page(request.path):
        return page()
    return JsonResponse({"detail": detail}, status=status)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    detail = f"Bad request: {exception}" if str(exception) else "Bad request."
    return answer(request, 400, detail, lambda: defaults.bad_request(request, exception))


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    detail = f"Forbidden: {exception}" if str(exception) else "Forbidden."
    return answer(request, 403, detail, lambda: defaults.permission_denied(request, exception))


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    detail = f"Metis serves no {request.path}; the API is described at /docs."
    return answer(request, 404, detail, lambda: defaults.page_not_found(request, exception))


def server_error(request: HttpRequest) -> HttpResponse:
    detail = "The server failed on this request; the error is in its log."
    return answer(request, 500, detail, lambda: defaults.server_error(request))
