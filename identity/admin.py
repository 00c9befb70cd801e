"""The operator console. Django's admin log (LogEntry) is the audit trail of who
issued, revoked or rotated which key, and when."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from identity.models import (
    GatewayKey,
    ProviderCredential,
    Quota,
    Team,
    TeamMembership,
    User,
    Workspace,
)


class MembershipInline(admin.TabularInline):
    model = TeamMembership
    extra = 0
    autocomplete_fields = ["user", "team"]


@admin.register(User)
class MetisUserAdmin(UserAdmin):
    inlines = [MembershipInline]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]
    inlines = [MembershipInline]


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ["name", "path", "default_model", "created_at"]
    search_fields = ["name", "path"]


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple]:
        return list(GatewayKey.Status.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet | None:
        return {
            "active": queryset.active,
            "revoked": queryset.revoked,
            "expired": queryset.expired,
        }.get(self.value() or "", lambda: None)()


class ModelListField(forms.CharField):
    """Allowed models as comma-separated text instead of raw JSON."""

    def prepare_value(self, value: object) -> object:
        return ", ".join(value) if isinstance(value, list) else value

    def to_python(self, value: str | None) -> list[str]:
        return [m.strip() for m in (value or "").split(",") if m.strip()]


class GatewayKeyForm(forms.ModelForm):
    allowed_models = ModelListField(
        required=False,
        help_text="Comma-separated model ids or aliases (e.g. haiku, gpt-5-mini); empty = all.",
    )

    class Meta:
        model = GatewayKey
        fields = ["name", "workspace", "user", "team", "allowed_models", "expires_at"]

    def validate_unique(self) -> None:
        super().validate_unique()
        # Django skips the live-name constraint here because its condition reads
        # revoked_at, which is not on the form; without this a clash is an IntegrityError.
        try:
            self.instance.validate_constraints()
        except ValidationError as exc:
            self.add_error(None, exc)


class QuotaInline(admin.TabularInline):
    model = Quota
    fk_name = "key"
    extra = 0
    fields = ["period", "soft_cap_usd", "hard_cap_usd", "requests_per_minute", "tokens_per_minute"]


@admin.register(GatewayKey)
class GatewayKeyAdmin(admin.ModelAdmin):
    form = GatewayKeyForm
    list_display = [
        "id",
        "name",
        "user",
        "team",
        "workspace",
        "status_label",
        "last_used_at",
        "expires_at",
    ]
    list_select_related = ["user", "team", "workspace"]
    list_filter = [StatusFilter, "team", "workspace", "created_at", "last_used_at"]
    search_fields = [
        "id",
        "name",
        "token_prefix",
        "user__username",
        "team__name",
        "workspace__name",
    ]
    readonly_fields = ["id", "token_prefix", "created_at", "last_used_at", "revoked_at"]
    autocomplete_fields = ["workspace", "user", "team"]
    date_hierarchy = "created_at"
    actions = ["revoke_keys", "rotate_keys"]
    inlines = [QuotaInline]
    list_per_page = 100
    # Counting every key on each page load does not scale; ids are ULIDs, so sort by them.
    show_full_result_count = False

    @admin.display(description="status")
    def status_label(self, key: GatewayKey) -> str:
        return key.status.label

    def get_readonly_fields(self, request: HttpRequest, obj: GatewayKey | None = None) -> list:
        # The token is only ever set by issuing or rotating, never typed in.
        return self.readonly_fields if obj else []

    def save_model(self, request: HttpRequest, obj: GatewayKey, form, change: bool) -> None:
        if not change:
            request._issued_token = obj.set_token()
        super().save_model(request, obj, form, change)

    def response_add(self, request: HttpRequest, obj: GatewayKey, post_url_continue=None):
        # Render the token in this response rather than via messages: the messages
        # framework would persist it in a cookie or the session table.
        return self.token_page(request, [(obj, request._issued_token)], "issued")

    @admin.action(description="Revoke selected keys (they stop working at once)")
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet) -> None:
        revoked = 0
        for key in queryset.filter(revoked_at__isnull=True):
            key.revoke()
            self.log_change(request, key, "Revoked")
            revoked += 1
        self.message_user(request, f"Revoked {revoked} key(s).", messages.SUCCESS)

    @admin.action(description="Rotate selected keys (new token; the old one stops working)")
    def rotate_keys(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        live = list(queryset.active())
        if not live:
            self.message_user(request, "Only active keys can be rotated.", messages.WARNING)
            return None
        issued = []
        for key in live:
            issued.append((key, key.rotate()))
            self.log_change(request, key, "Rotated token")
        return self.token_page(request, issued, "rotated")

    def token_page(self, request: HttpRequest, issued: list, verb: str) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Gateway key {verb}: copy the token now",
            "issued": issued,
            "verb": verb,
        }
        response = TemplateResponse(request, "admin/identity/key_token.html", context)
        response.headers["Cache-Control"] = "no-store"
        return response


class ProviderCredentialForm(forms.ModelForm):
    base_url = forms.URLField(
        required=False,
        assume_scheme="https",
        help_text="Required for OpenAI-compatible servers; blank = the provider's own.",
    )
    api_key = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Write-only: stored encrypted and never shown again. Leave blank to keep.",
    )

    class Meta:
        model = ProviderCredential
        fields = ["name", "provider", "base_url", "api_key", "is_active"]


@admin.register(ProviderCredential)
class ProviderCredentialAdmin(admin.ModelAdmin):
    form = ProviderCredentialForm
    list_display = ["name", "provider", "base_url", "key_hint", "is_active", "updated_at"]
    list_filter = ["provider", "is_active"]
    search_fields = ["name", "base_url"]
    readonly_fields = ["key_hint", "created_at", "updated_at"]

    def save_model(self, request: HttpRequest, obj: ProviderCredential, form, change) -> None:
        if form.cleaned_data.get("api_key"):
            obj.set_api_key(form.cleaned_data["api_key"])
        super().save_model(request, obj, form, change)
