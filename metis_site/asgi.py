"""ASGI entry point for both processes; METIS_ROLE (set by the CLI) picks the URLconf."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "metis_site.settings")

application = get_asgi_application()
