from __future__ import annotations

from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

from agent.api import api as sessions_api
from analytics import exports, views
from analytics.api import api
from identity import oidc, signin
from reconcile import api as reconcile_api  # noqa: F401  (adds /analytics/reconciliation)

admin.site.site_header = "Metis operator console"
admin.site.site_title = "Metis"
admin.site.index_title = "Gateway keys, teams, budgets and providers"
admin.site.site_url = "/dashboard/"  # the header's "View site": what the keys are for

urlpatterns = [
    path("admin/", admin.site.urls),
    path("login/", signin.sign_in, name="login"),
    path("logout/", signin.sign_out, name="logout"),
    path("login/oidc/", oidc.start, name="oidc-start"),
    path("login/oidc/callback/", oidc.callback, name="oidc-callback"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("dashboard/cache/", views.cache_tables, name="dashboard-cache"),
    path("dashboard/team/", views.team_members, name="dashboard-team"),
    path("dashboard/export/<slug:table>.csv", exports.export, name="dashboard-export"),
    path("", sessions_api.urls),
    path("", api.urls),
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
]

handler400 = "metis_site.errors.bad_request"
handler403 = "metis_site.errors.permission_denied"
handler404 = "metis_site.errors.page_not_found"
handler500 = "metis_site.errors.server_error"
