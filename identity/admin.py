"""The operator console. Django's admin log (LogEntry) is the audit trail of who
issued, revoked or rotated which key, and when."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.templatetags.admin_urls import add_preserved_filters
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.defaultfilters import pluralize
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from identity.models import (
    GatewayKey,
    ProviderCredential,
    Quota,
    Team,
    TeamMembership,
    User,
    Workspace,
)


def dashboard_link(**filters: str) -> str:
    """The dashboard scoped to one team, user or key (its `?team=`/`?user=`/`?gateway_key=`)."""
    return f"{reverse('dashboard')}?{urlencode(filters)}"


class ConsoleAdmin(admin.ModelAdmin):
    """A change page with a "View in dashboard" link (templates/admin/identity/change_form.html)."""

    def dashboard_url(self, obj: Model) -> str | None:
        return None

    def render_change_form(self, request: HttpRequest, context: dict, *args, **kwargs):
        obj = kwargs.get("obj")
        if obj is not None and obj.pk is not None:
            context["dashboard_url"] = self.dashboard_url(obj)
        return super().render_change_form(request, context, *args, **kwargs)


class KeepsKeyHistory(ConsoleAdmin):
    """Teams and users that have gateway keys (revoked ones too) are not deleted: their keys
    would lose their team or owner, and with them the budgets and attribution of their
    history. Django's delete pages list the keys as protected objects and refuse."""

    key_owner_field = ""
    instead = ""

    def get_deleted_objects(self, objs, request: HttpRequest):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        owners = {f"{self.key_owner_field}__in": [o.pk for o in objs]}
        held = [f"Gateway key: {key}" for key in GatewayKey.objects.filter(**owners)]
        if held:
            protected = [*protected, *held, f"Keys are revoked, never deleted. {self.instead}"]
        return deleted, counts, perms_needed, protected


class MembershipInline(admin.TabularInline):
    model = TeamMembership
    extra = 0
    autocomplete_fields = ["user", "team"]


@admin.register(User)
class MetisUserAdmin(KeepsKeyHistory, UserAdmin):
    inlines = [MembershipInline]
    key_owner_field = "user"
    instead = "To stop this user, clear Active instead of deleting the user."

    def dashboard_url(self, user: User) -> str:
        return dashboard_link(user=user.username)


@admin.register(Team)
class TeamAdmin(KeepsKeyHistory):
    list_display = ["name", "created_at"]
    search_fields = ["name"]
    inlines = [MembershipInline]
    key_owner_field = "team"
    instead = "A team with keys stays, so their history keeps its team."

    def dashboard_url(self, team: Team) -> str:
        return dashboard_link(team=team.name)


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ["name", "path", "default_model", "drop_unsupported_params", "created_at"]
    fields = ["name", "path", "default_model", "drop_unsupported_params"]
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


class DropChoice(forms.NullBooleanSelect):
    """Django's labels are "Unknown / Yes / No"; these say what each choice does."""

    def __init__(self, attrs: dict | None = None) -> None:
        super().__init__(attrs)
        self.choices = [
            ("unknown", "As the workspace says"),
            ("true", "Drop them"),
            ("false", "Refuse the call (400)"),
        ]


class GatewayKeyForm(forms.ModelForm):
    allowed_models = ModelListField(
        required=False,
        help_text="Comma-separated model ids or aliases (e.g. haiku, gpt-5-mini); empty = all.",
    )

    class Meta:
        model = GatewayKey
        fields = [
            "name",
            "workspace",
            "user",
            "team",
            "allowed_models",
            "drop_unsupported_params",
            "expires_at",
        ]
        widgets = {"drop_unsupported_params": DropChoice}

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


ALREADY_REVOKED = "These keys are already revoked; revoking is final."


def changes(verb: str, key: GatewayKey, now: datetime) -> bool:
    """Revoking changes any key not revoked yet (expired ones too); rotating, active ones."""
    if verb == "revoke":
        return key.revoked_at is None
    return key.status_at(now) == GatewayKey.Status.ACTIVE


@admin.register(GatewayKey)
class GatewayKeyAdmin(ConsoleAdmin):
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

    def has_delete_permission(self, request: HttpRequest, obj: GatewayKey | None = None) -> bool:
        # Keys are revoked, never deleted: their calls, quotas and audit trail keep pointing
        # at them. This also removes the "Delete selected" action.
        return False

    def get_readonly_fields(self, request: HttpRequest, obj: GatewayKey | None = None) -> list:
        # The token is only ever set by issuing or rotating, never typed in.
        return self.readonly_fields if obj else []

    def dashboard_url(self, key: GatewayKey) -> str:
        return dashboard_link(gateway_key=key.pk)

    def get_urls(self) -> list:
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/revoke/", wrap(self.revoke_view), name="identity_key_revoke"),
            path("<path:object_id>/rotate/", wrap(self.rotate_view), name="identity_key_rotate"),
            *super().get_urls(),
        ]

    def save_model(self, request: HttpRequest, obj: GatewayKey, form, change: bool) -> None:
        if not change:
            request._issued_token = obj.set_token()
        super().save_model(request, obj, form, change)

    def response_add(self, request: HttpRequest, obj: GatewayKey, post_url_continue=None):
        # Render the token in this response rather than via messages: the messages
        # framework would persist it in a cookie or the session table.
        return self.token_page(request, [(obj, request._issued_token)], "issued")

    # Revoke and rotate: the list actions and the buttons on a key's page both show a
    # confirmation page first, as Django's delete does; only its "Yes" (post=yes) acts.

    @admin.action(
        description="Revoke selected keys (they stop working at once)",
        permissions=["change"],
    )
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        keys = list(queryset.select_related("user", "team"))
        if all(k.revoked_at is not None for k in keys):
            self.message_user(request, ALREADY_REVOKED, messages.WARNING)
            return None
        if request.POST.get("post") != "yes":
            return self.confirm_page(request, "revoke", keys, self.changelist_url(request))
        self.revoke(request, keys)
        return None

    @admin.action(
        description="Rotate selected keys (new token; the old one stops working)",
        permissions=["change"],
    )
    def rotate_keys(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        keys = list(queryset.select_related("user", "team"))
        if not any(k.status == GatewayKey.Status.ACTIVE for k in keys):
            self.message_user(request, "Only active keys can be rotated.", messages.WARNING)
            return None
        if request.POST.get("post") != "yes":
            return self.confirm_page(request, "rotate", keys, self.changelist_url(request))
        return self.rotate(request, keys)

    def revoke_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        key = self.key_to_change(request, object_id)
        back = reverse("admin:identity_gatewaykey_change", args=[key.pk])
        if key.revoked_at is not None:
            self.message_user(request, ALREADY_REVOKED, messages.WARNING)
            return HttpResponseRedirect(back)
        if request.method != "POST":
            return self.confirm_page(request, "revoke", [key], back)
        self.revoke(request, [key])
        return HttpResponseRedirect(back)

    def rotate_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        key = self.key_to_change(request, object_id)
        back = reverse("admin:identity_gatewaykey_change", args=[key.pk])
        if key.status != GatewayKey.Status.ACTIVE:
            self.message_user(request, "Only active keys can be rotated.", messages.WARNING)
            return HttpResponseRedirect(back)
        if request.method != "POST":
            return self.confirm_page(request, "rotate", [key], back)
        return self.rotate(request, [key])

    def key_to_change(self, request: HttpRequest, object_id: str) -> GatewayKey:
        key = self.get_object(request, unquote(object_id))
        if key is None:
            raise Http404(f"no gateway key {object_id!r}")
        if not self.has_change_permission(request, key):
            raise PermissionDenied
        return key

    def revoke(self, request: HttpRequest, keys: list[GatewayKey]) -> None:
        revoked = 0
        for key in keys:
            if key.revoked_at is None:
                key.revoke()
                self.log_change(request, key, "Revoked")
                revoked += 1
        self.message_user(request, f"Revoked {revoked} key(s).", messages.SUCCESS)

    def rotate(self, request: HttpRequest, keys: list[GatewayKey]) -> HttpResponse:
        issued = []
        for key in keys:
            if key.status == GatewayKey.Status.ACTIVE:
                issued.append((key, key.rotate()))
                self.log_change(request, key, "Rotated token")
        return self.token_page(request, issued, "rotated")

    def changelist_url(self, request: HttpRequest) -> str:
        url = reverse("admin:identity_gatewaykey_changelist")
        filters = self.get_preserved_filters(request)
        return add_preserved_filters({"preserved_filters": filters, "opts": self.opts}, url)

    def confirm_page(
        self, request: HttpRequest, verb: str, keys: list[GatewayKey], cancel_url: str
    ) -> TemplateResponse:
        """Which keys the action changes, which it leaves alone and why, and a form that
        posts the same request again with post=yes."""
        now = timezone.now()
        applies = [k for k in keys if changes(verb, k, now)]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"{verb.capitalize()} {len(applies)} gateway key{pluralize(len(applies))}?",
            "verb": verb,
            "applies": applies,
            "skipped": [k for k in keys if k not in applies],
            "as_action": "action" in request.POST,
            "action": f"{verb}_keys",
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "cancel_url": cancel_url,
        }
        return TemplateResponse(request, "admin/identity/key_confirm.html", context)

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
        label="Base URL",
        required=False,
        assume_scheme="https",
        help_text="Required for OpenAI-compatible servers; blank = the provider's own.",
    )
    api_key = forms.CharField(
        label="API key",
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Write-only: stored encrypted and never shown again. Leave blank to keep.",
    )
    admin_key = forms.CharField(
        label="Admin key",
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Anthropic or OpenAI organisation admin key, to reconcile against their "
        "usage and cost reports. Write-only, like the API key. Leave blank to keep.",
    )

    class Meta:
        model = ProviderCredential
        fields = ["name", "provider", "base_url", "api_key", "admin_key", "is_active"]


@admin.register(ProviderCredential)
class ProviderCredentialAdmin(admin.ModelAdmin):
    form = ProviderCredentialForm
    list_display = [
        "name", "provider", "base_url", "key_hint", "admin_key_hint", "is_active", "updated_at",
    ]  # fmt: skip
    list_filter = ["provider", "is_active"]
    search_fields = ["name", "base_url"]
    readonly_fields = ["key_hint", "admin_key_hint", "created_at", "updated_at"]

    def save_model(self, request: HttpRequest, obj: ProviderCredential, form, change) -> None:
        if form.cleaned_data.get("api_key"):
            obj.set_api_key(form.cleaned_data["api_key"])
        if form.cleaned_data.get("admin_key"):
            obj.set_admin_key(form.cleaned_data["admin_key"])
        super().save_model(request, obj, form, change)
