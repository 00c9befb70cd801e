"""The dashboard's own sign-in (`/login/`, `/logout/`), open to every active user.

The admin keeps its staff-only login at /admin/login/. Both count failed attempts through
django-axes (settings `AXES_*`): per account and per address, in the database, so every
`metis serve` process sharing it refuses the same locked-out account.
"""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from identity import oidc


class ThrottledBackend(AxesStandaloneBackend):
    """axes' lockout check, first in AUTHENTICATION_BACKENDS. Every web sign-in passes its
    request; authenticate() without one (the test client's login(), a script) has no
    address to count and is not a sign-in over the web, so it is let through here."""

    def authenticate(self, request: HttpRequest | None, *args: Any, **kwargs: Any) -> None:
        if request is None:
            return None
        return super().authenticate(request, *args, **kwargs)


class SignIn(auth_views.LoginView):
    template_name = "identity/login.html"
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return super().get_context_data(sso_name=oidc.name(), **kwargs)


sign_in = SignIn.as_view()
# Django 5: logging out is a POST with the CSRF token; a GET gets 405.
sign_out = auth_views.LogoutView.as_view(next_page="/login/")


def client_address(request: HttpRequest) -> str:
    """The address failed sign-ins are counted against. Behind METIS_PROXY_COUNT proxies
    the TCP peer is the proxy, so read the client from X-Forwarded-For, counting from the
    right: entries further left were written by the client and prove nothing."""
    hops = settings.METIS_PROXY_COUNT
    if hops > 0:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
        forwarded = [address.strip() for address in forwarded if address.strip()]
        if len(forwarded) >= hops:
            return forwarded[-hops]
    return request.META.get("REMOTE_ADDR", "")


def locked_out(request: HttpRequest, *_: object) -> HttpResponse:
    """axes' answer to a locked-out account or address, on /login/ and /admin/login/ alike."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    message = (
        f"Too many failed sign-ins for this account or from this address. "
        f"Sign-in is locked for {minutes} minutes; try again later, or ask an operator."
    )
    context = {"locked_out": message, "sso_name": oidc.name(), "next": ""}
    return render(request, "identity/login.html", context, status=429)
