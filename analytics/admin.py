"""Quotas in the operator console, with where each one stands right now.

Registered here rather than in identity/admin.py because spend is analytics'
to compute (imports flow gateway → analytics → identity)."""

from __future__ import annotations

from django.contrib import admin
from django.utils import timezone

from analytics import budgets
from identity.models import Quota


@admin.register(Quota)
class QuotaAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "period",
        "soft_cap_usd",
        "hard_cap_usd",
        "this_period",
        "requests_per_minute",
        "tokens_per_minute",
    ]
    list_filter = ["period"]
    list_select_related = ["team", "user", "key"]
    search_fields = ["team__name", "user__username", "key__name", "key__id"]
    autocomplete_fields = ["team", "user", "key"]
    readonly_fields = ["this_period"]
    fieldsets = [
        ("Applies to (exactly one)", {"fields": ["team", "user", "key"]}),
        ("Limits", {"fields": ["period", "soft_cap_usd", "hard_cap_usd"]}),
        ("Rates", {"fields": ["requests_per_minute", "tokens_per_minute"]}),
        ("Now", {"fields": ["this_period"]}),
    ]

    @admin.display(description="this period")
    def this_period(self, quota: Quota) -> str:
        if quota.pk is None:
            return "—"
        status = budgets.status(quota, timezone.now())  # one indexed spend query per row
        state = {"ok": "ok", "soft": "over the soft cap", "hard": "at the hard cap"}[status.state]
        parts = [f"${status.spent_usd:.4f} spent", state]
        if status.remaining_usd is not None:
            parts.insert(1, f"${status.remaining_usd:.4f} left")
        if status.resets_at:
            parts.append(f"resets {status.resets_at:%Y-%m-%d %H:%M %Z}")
        return " · ".join(parts)
