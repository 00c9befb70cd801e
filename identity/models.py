"""Who calls the gateway and on whose money: users, teams, workspaces, keys, quotas."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from identity import encryption, keys

# Said once, shown on the workspace and the key forms alike.
DROP_HELP = (
    "Cross-shape calls only. Fields with no equivalent in the provider's shape (seed, "
    "logprobs, n > 1, temperature above Claude's range, …) are dropped instead of refused "
    "with a 400. Dropped fields are listed on the call's event as dropped_params and in an "
    "x-metis-dropped-params response header."
)


class User(AbstractUser):
    """Custom from day one, so fields can be added without a painful swap later."""


class Team(models.Model):
    name = models.CharField(max_length=100, unique=True)
    members = models.ManyToManyField(User, through="TeamMembership", related_name="teams")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class TeamMembership(models.Model):
    class Role(models.TextChoices):
        MEMBER = "member", "Member"
        BUDGET_OWNER = "budget_owner", "Budget owner"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.MEMBER)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "team"], name="one_membership_per_team"),
            models.CheckConstraint(
                condition=Q(role__in=["member", "budget_owner"]), name="membership_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.get_role_display()})"


class Workspace(models.Model):
    """The project a key is issued for (`--workspace /path/to/project`)."""

    name = models.CharField(max_length=200)
    path = models.CharField(max_length=1024, unique=True)
    default_model = models.CharField(max_length=200, blank=True)
    drop_unsupported_params = models.BooleanField(
        "drop unsupported parameters",
        default=False,
        help_text=DROP_HELP,
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @classmethod
    def for_path(cls, path: str) -> Workspace:
        resolved = str(Path(path).expanduser().resolve())
        workspace, _ = cls.objects.get_or_create(
            path=resolved, defaults={"name": Path(resolved).name or resolved}
        )
        return workspace


class GatewayKeyQuerySet(models.QuerySet["GatewayKey"]):
    def active(self, now: datetime | None = None) -> GatewayKeyQuerySet:
        now = now or timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        )

    def revoked(self) -> GatewayKeyQuerySet:
        return self.filter(revoked_at__isnull=False)

    def expired(self, now: datetime | None = None) -> GatewayKeyQuerySet:
        return self.filter(revoked_at__isnull=True, expires_at__lte=now or timezone.now())


class GatewayKey(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        REVOKED = "revoked", "Revoked"
        EXPIRED = "expired", "Expired"

    id = models.CharField(
        "key id", primary_key=True, max_length=32, default=keys.new_key_id, editable=False
    )
    name = models.CharField(max_length=100)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    token_prefix = models.CharField("token starts with", max_length=16, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.PROTECT, related_name="keys")
    user = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="gateway_keys"
    )
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="gateway_keys"
    )
    allowed_models = models.JSONField(
        default=list, blank=True, help_text="Model ids or aliases this key may call; empty = all."
    )
    drop_unsupported_params = models.BooleanField(
        "drop unsupported parameters",
        null=True,
        blank=True,
        help_text=f"Blank = as the workspace says. {DROP_HELP}",
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    rotated_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = GatewayKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "gateway key"
        constraints = [
            # A name identifies a live key; a revoked key's name may be reused.
            models.UniqueConstraint(
                fields=["name"],
                condition=Q(revoked_at__isnull=True),
                name="unique_live_key_name",
                violation_error_message="A live gateway key with this name already exists.",
            ),
        ]
        indexes = [models.Index(fields=["team", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"

    @classmethod
    def issue(
        cls,
        *,
        name: str,
        workspace: Workspace,
        user: User | None = None,
        team: Team | None = None,
        allowed_models: list[str] | None = None,
        expires_at: datetime | None = None,
        drop_unsupported_params: bool | None = None,
    ) -> tuple[GatewayKey, str]:
        """Create a key; returns it with its plaintext token, which is never stored."""
        key = cls(
            name=name,
            workspace=workspace,
            user=user,
            team=team,
            allowed_models=list(allowed_models or []),
            expires_at=expires_at,
            drop_unsupported_params=drop_unsupported_params,
        )
        token = key.set_token()
        key.full_clean()
        key.save()
        return key, token

    def set_token(self) -> str:
        token = keys.new_token()
        self.token_hash = keys.hash_token(token)
        self.token_prefix = keys.display_prefix(token)
        return token

    def rotate(self) -> str:
        """Give the key a new token. The old token stops working at once; the key id,
        its history, limits and attribution stay."""
        token = self.set_token()
        self.rotated_at = timezone.now()
        self.save(update_fields=["token_hash", "token_prefix", "rotated_at"])
        return token

    def revoke(self) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])

    def status_at(self, now: datetime) -> Status:
        if self.revoked_at is not None:
            return self.Status.REVOKED
        if self.expires_at is not None and self.expires_at <= now:
            return self.Status.EXPIRED
        return self.Status.ACTIVE

    @property
    def status(self) -> Status:
        return self.status_at(timezone.now())

    @property
    def drops_unsupported_params(self) -> bool:
        """The key's own choice, else its workspace's."""
        if self.drop_unsupported_params is not None:
            return self.drop_unsupported_params
        return self.workspace.drop_unsupported_params

    def clean(self) -> None:
        if not isinstance(self.allowed_models, list) or not all(
            isinstance(m, str) and m.strip() for m in self.allowed_models
        ):
            raise ValidationError({"allowed_models": "Give a list of model names."})


class ProviderCredential(models.Model):
    """An upstream account. `name` is the model prefix it serves (`ollama:llama3`)."""

    class Provider(models.TextChoices):
        ANTHROPIC = "anthropic", "Anthropic"
        OPENAI = "openai", "OpenAI"
        OPENAI_COMPATIBLE = "openai-compatible", "OpenAI-compatible (vLLM, Ollama, OpenRouter, …)"

    name = models.SlugField(
        max_length=50,
        unique=True,
        help_text="Used as the model prefix, e.g. 'anthropic' or 'ollama' in 'ollama:llama3'.",
    )
    provider = models.CharField(max_length=20, choices=Provider.choices)
    base_url = models.URLField(
        "base URL",
        blank=True,
        help_text="Required for OpenAI-compatible servers; blank = the provider's own.",
    )
    encrypted_api_key = models.TextField(blank=True, editable=False)
    key_hint = models.CharField("API key ends with", max_length=12, blank=True, editable=False)
    # The organisation's admin key, for its usage and cost reports (reconcile/): only for
    # Anthropic and OpenAI, whose reports Metis reads.
    encrypted_admin_key = models.TextField(blank=True, editable=False)
    admin_key_hint = models.CharField(
        "admin key ends with", max_length=12, blank=True, editable=False
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(provider="openai-compatible") | ~Q(base_url=""),
                name="compatible_provider_needs_base_url",
                violation_error_message="An OpenAI-compatible provider needs a base URL.",
            ),
            models.CheckConstraint(
                condition=Q(provider__in=["anthropic", "openai", "openai-compatible"]),
                name="provider_known",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def set_api_key(self, raw: str) -> None:
        self.encrypted_api_key = encryption.encrypt(raw) if raw else ""
        self.key_hint = f"…{raw[-4:]}" if len(raw) >= 12 else ("…" if raw else "")

    @property
    def api_key(self) -> str:
        return encryption.decrypt(self.encrypted_api_key) if self.encrypted_api_key else ""

    def set_admin_key(self, raw: str) -> None:
        self.encrypted_admin_key = encryption.encrypt(raw) if raw else ""
        self.admin_key_hint = f"…{raw[-4:]}" if len(raw) >= 12 else ("…" if raw else "")

    @property
    def admin_key(self) -> str:
        return encryption.decrypt(self.encrypted_admin_key) if self.encrypted_admin_key else ""


class Quota(models.Model):
    """Limits for a team, a user or a key. Enforced by the gateway (gateway/budgets/)."""

    class Period(models.TextChoices):
        DAY = "day", "Day"
        WEEK = "week", "Week"
        MONTH = "month", "Month"
        TOTAL = "total", "Total (never resets)"

    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.CASCADE, related_name="quotas"
    )
    user = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.CASCADE, related_name="quotas"
    )
    key = models.ForeignKey(
        GatewayKey, null=True, blank=True, on_delete=models.CASCADE, related_name="quotas"
    )
    period = models.CharField(max_length=10, choices=Period.choices, default=Period.MONTH)
    soft_cap_usd = models.DecimalField(
        "soft cap (USD)", max_digits=14, decimal_places=4, null=True, blank=True,
        help_text="Crossing it alerts; calls go on.",
    )  # fmt: skip
    hard_cap_usd = models.DecimalField(
        "hard cap (USD)", max_digits=14, decimal_places=4, null=True, blank=True,
        help_text="Calls that would cross it are refused with 429.",
    )  # fmt: skip
    requests_per_minute = models.PositiveIntegerField(
        "rate limit (requests/minute)", null=True, blank=True
    )
    tokens_per_minute = models.PositiveIntegerField(
        "rate limit (tokens/minute)", null=True, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(team__isnull=False, user__isnull=True, key__isnull=True)
                    | Q(team__isnull=True, user__isnull=False, key__isnull=True)
                    | Q(team__isnull=True, user__isnull=True, key__isnull=False)
                ),
                name="quota_has_exactly_one_scope",
                violation_error_message="A quota belongs to exactly one team, user or key.",
            ),
            models.CheckConstraint(
                condition=Q(soft_cap_usd__isnull=False)
                | Q(hard_cap_usd__isnull=False)
                | Q(requests_per_minute__isnull=False)
                | Q(tokens_per_minute__isnull=False),
                name="quota_sets_a_limit",
                violation_error_message="Set at least one limit: a cap or a rate.",
            ),
            models.CheckConstraint(
                condition=Q(soft_cap_usd__isnull=True) | Q(soft_cap_usd__gt=0),
                name="quota_soft_cap_positive",
                violation_error_message="The soft cap must be more than $0.",
            ),
            models.CheckConstraint(
                condition=Q(hard_cap_usd__isnull=True) | Q(hard_cap_usd__gte=0),
                name="quota_hard_cap_not_negative",
                violation_error_message="The hard cap cannot be negative ($0 blocks all calls).",
            ),
            models.CheckConstraint(
                condition=Q(soft_cap_usd__isnull=True)
                | Q(hard_cap_usd__isnull=True)
                | Q(soft_cap_usd__lte=models.F("hard_cap_usd")),
                name="quota_soft_cap_within_hard_cap",
                violation_error_message="The soft cap must not be above the hard cap.",
            ),
            models.CheckConstraint(
                condition=(Q(requests_per_minute__isnull=True) | Q(requests_per_minute__gt=0))
                & (Q(tokens_per_minute__isnull=True) | Q(tokens_per_minute__gt=0)),
                name="quota_rates_positive",
                violation_error_message="Rate limits must be at least 1 per minute.",
            ),
            *(
                models.UniqueConstraint(
                    fields=[scope, "period"],
                    condition=Q(**{f"{scope}__isnull": False}),
                    name=f"one_{scope}_quota_per_period",
                    violation_error_message=f"This {scope} already has a quota for this period.",
                )
                for scope in ("team", "user", "key")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_period_display()} quota for {self.scope_label}"

    @property
    def scope_label(self) -> str:
        if self.team_id:
            return f"team {self.team}"
        if self.user_id:
            return f"user {self.user}"
        return f"key {self.key_id}"
