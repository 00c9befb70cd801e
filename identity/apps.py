from __future__ import annotations

from django.apps import AppConfig


class IdentityConfig(AppConfig):
    verbose_name = "Identity and access"
    name = "identity"
    default_auto_field = "django.db.models.BigAutoField"
