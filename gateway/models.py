"""Operator-defined routing and pricing: aliases, pattern routes, price overrides."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from analytics.pricing import Price


class ModelAlias(models.Model):
    """A short name clients may send as `model`, e.g. `fast` → `anthropic:claude-haiku-4-5`.
    Overrides the built-in `haiku`, `sonnet` and `opus`."""

    alias = models.SlugField(max_length=100, unique=True)
    target = models.CharField(
        max_length=200, help_text="A model id or provider:model, e.g. openai:gpt-5-mini."
    )

    class Meta:
        ordering = ["alias"]
        verbose_name_plural = "model aliases"

    def __str__(self) -> str:
        return f"{self.alias} → {self.target}"


class RoutePattern(models.Model):
    """Used when a client omits `model` and no workspace routing rule matched."""

    class Field(models.TextChoices):
        WORKSPACE = "workspace", "Workspace path"
        KEY = "key", "Key name"
        USER = "user", "User (x-metis-user or key owner)"

    field = models.CharField(max_length=20, choices=Field.choices, default=Field.WORKSPACE)
    pattern = models.CharField(max_length=300, help_text="A shell-style glob, e.g. */ml-*.")
    model = models.CharField(max_length=200)
    priority = models.IntegerField(default=100, help_text="Lower numbers are tried first.")

    class Meta:
        ordering = ["priority", "id"]

    def __str__(self) -> str:
        return f"{self.field} ~ {self.pattern} → {self.model}"


class PriceOverride(models.Model):
    """The operator's price for a model (custom, fine-tuned, self-hosted or negotiated).
    Matches the model id exactly, or as a prefix when `match_prefix` is set."""

    model = models.CharField(max_length=200, unique=True)
    match_prefix = models.BooleanField(default=False)
    input_per_mtok = models.DecimalField("input $/Mtok", max_digits=12, decimal_places=6)
    output_per_mtok = models.DecimalField("output $/Mtok", max_digits=12, decimal_places=6)
    cache_read_per_mtok = models.DecimalField(
        "cache read $/Mtok", max_digits=12, decimal_places=6, null=True, blank=True,
        help_text="Blank = the input price.",
    )  # fmt: skip
    cache_write_per_mtok = models.DecimalField(
        "cache write $/Mtok", max_digits=12, decimal_places=6, null=True, blank=True,
        help_text="Blank = the input price.",
    )  # fmt: skip
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model"]
        constraints = [
            models.CheckConstraint(
                condition=Q(input_per_mtok__gte=0)
                & Q(output_per_mtok__gte=0)
                & (Q(cache_read_per_mtok__isnull=True) | Q(cache_read_per_mtok__gte=0))
                & (Q(cache_write_per_mtok__isnull=True) | Q(cache_write_per_mtok__gte=0)),
                name="price_override_not_negative",
                violation_error_message="Prices cannot be negative.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.model}{'*' if self.match_prefix else ''}"

    def price(self) -> Price:
        return Price(
            input=self.input_per_mtok,
            output=self.output_per_mtok,
            cache_read=self.cache_read_per_mtok,
            cache_write_5m=self.cache_write_per_mtok,
            source="override",
        )


class BudgetWebhook(models.Model):
    """Where budget alerts are POSTed (JSON) when a soft cap, or 50 % / 80 % of it, is crossed."""

    url = models.URLField(max_length=500, unique=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["url"]

    def __str__(self) -> str:
        return self.url
