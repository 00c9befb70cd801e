"""The gateway process serves only the provider-shape API (see gateway/api.py)."""

from __future__ import annotations

from django.urls import path

from gateway.api import api

urlpatterns = [path("", api.urls)]

# Only an uncaught exception reaches these: every path the gateway does not serve is
# answered by gateway/api.py's catch-all, in the caller's shape.
handler500 = "gateway.api.server_error"
