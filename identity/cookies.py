"""Secure cookies where the request itself came over https."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.deprecation import MiddlewareMixin


class SecureCookiesMiddleware(MiddlewareMixin):
    """Marks the session and CSRF cookies `Secure` on https requests (directly, or through
    a proxy that sets METIS_SECURE_PROXY_SSL_HEADER). Not SESSION_COOKIE_SECURE: that
    would drop the session of a developer on plain http://127.0.0.1 in local mode.
    Sits above the session and CSRF middleware, so it sees the cookies they set."""

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if request.is_secure():
            for name in (settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME):
                if name in response.cookies:
                    response.cookies[name]["secure"] = True
        return response
