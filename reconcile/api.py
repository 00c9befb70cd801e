"""`GET /analytics/reconciliation`, on the analytics API (same auth, versioning, errors).

Registered by importing this module (metis_site/urls.py does), so analytics/ needs no
knowledge of reconcile/.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from ninja.errors import HttpError

from analytics.api import From, To, Window, _answer, _window, api
from analytics.scope import Scope, Viewer
from reconcile import queries


@api.get("/analytics/reconciliation", tags=["analytics"])
def reconciliation(
    request: HttpRequest, response: HttpResponse, window: str | None = Window,
    from_: str | None = From, to: str | None = To,
) -> dict:  # fmt: skip
    """The providers' own usage and cost reports against Metis, per UTC day × upstream and
    model: tokens by kind, cost, drift (provider minus Metis, and % of the provider's cost),
    bypass (provider traffic on a Metis key that never passed through Metis) and unreported
    tokens. Staff and budget owners only."""

    def build(viewer: Viewer, scope: Scope) -> dict:
        if not queries.may_see(viewer):
            raise HttpError(403, "Reconciliation is for staff and budget owners.")
        return {"window": _window(scope), **queries.summary(scope.start, scope.end)}

    return _answer(request, response, build)
