"""`metis serve`'s last-resort error pages: JSON for the API, plain pages for a browser.

Django's defaults are HTML ("Server Error (500)"), which an API client cannot read; they
apply only where a view did not answer itself (an uncaught exception, a request Django
refuses before any view, such as one with too many form fields).
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

from metis_site.server import is_page

MESSAGES = {
    400: "Bad request: Django refused it before any view saw it.",
    403: "Forbidden.",
    404: "Not found: the analytics API is described at /docs.",
    500: "The server failed on this request; the error is in its log.",
}


def answer(request: HttpRequest, status: int, page) -> HttpResponse:
    if is_page(request.path):
        return page()
    return JsonResponse({"detail": MESSAGES[status]}, status=status)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    return answer(request, 400, lambda: defaults.bad_request(request, exception))


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    return answer(request, 403, lambda: defaults.permission_denied(request, exception))


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    return answer(request, 404, lambda: defaults.page_not_found(request, exception))


def server_error(request: HttpRequest) -> HttpResponse:
    return answer(request, 500, lambda: defaults.server_error(request))
