from __future__ import annotations

from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

from analytics import views
from analytics.api import api

admin.site.site_header = "Metis operator console"
admin.site.site_title = "Metis"
admin.site.index_title = "Gateway keys, teams, budgets and providers"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("dashboard/export/<slug:table>.csv", views.export, name="dashboard-export"),
    path("", api.urls),
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
]

handler400 = "metis_site.errors.bad_request"
handler403 = "metis_site.errors.permission_denied"
handler404 = "metis_site.errors.page_not_found"
handler500 = "metis_site.errors.server_error"
