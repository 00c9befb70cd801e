from __future__ import annotations

from django.contrib import admin

from gateway.models import BudgetWebhook, ModelAlias, PriceOverride, RoutePattern


@admin.register(ModelAlias)
class ModelAliasAdmin(admin.ModelAdmin):
    list_display = ["alias", "target"]
    search_fields = ["alias", "target"]


@admin.register(RoutePattern)
class RoutePatternAdmin(admin.ModelAdmin):
    list_display = ["priority", "field", "pattern", "model"]
    list_editable = ["field", "pattern", "model"]
    list_display_links = ["priority"]


@admin.register(PriceOverride)
class PriceOverrideAdmin(admin.ModelAdmin):
    list_display = [
        "model",
        "match_prefix",
        "input_per_mtok",
        "output_per_mtok",
        "cache_read_per_mtok",
        "cache_write_per_mtok",
        "updated_at",
    ]
    search_fields = ["model"]


@admin.register(BudgetWebhook)
class BudgetWebhookAdmin(admin.ModelAdmin):
    list_display = ["url", "is_active", "created_at"]
