"""The gateway process serves only the provider-shape API (see gateway/api.py)."""

from __future__ import annotations

from django.urls import path

from gateway.api import api

urlpatterns = [path("", api.urls)]
