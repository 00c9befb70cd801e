"""What the providers reported, and how it compares with what Metis recorded.

Both tables are rebuilt for the days an import covers (reconcile.imports), so an import run
twice leaves them as one run would.
"""

from __future__ import annotations

from django.db import models

from analytics.models import MoneyField

TOKEN_KINDS = ("input", "cache_write", "cache_read", "output")


class ProviderUsage(models.Model):
    """One UTC day of one provider report, per API key and model, as the provider counted it.

    `upstream` is the Metis upstream (`anthropic`, `openai` or a credential's name) that holds
    the key; "" for a key of the organisation that Metis does not hold."""

    source = models.CharField(max_length=64)  # which report: kind + base URL + admin key
    provider = models.CharField(max_length=20)  # anthropic | openai
    upstream = models.CharField(max_length=100, blank=True, default="")
    day = models.DateField()
    api_key_id = models.CharField(max_length=100, blank=True, default="")
    model = models.CharField(max_length=200, blank=True, default="")
    input_tokens = models.BigIntegerField(default=0)  # uncached input only
    cache_write_5m_tokens = models.BigIntegerField(default=0)
    cache_write_1h_tokens = models.BigIntegerField(default=0)
    cache_read_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    requests = models.BigIntegerField(default=0)
    cost_usd = MoneyField(null=True, blank=True)  # None: the cost report had no line for it
    imported_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "day", "api_key_id", "model"], name="providerusage_unique"
            )
        ]
        indexes = [models.Index(fields=["day", "upstream"], name="providerusage_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.provider} {self.api_key_id} {self.model}"


class Reconciliation(models.Model):
    """Gateway against provider for one day × upstream (one provider key) × model.

    Tokens by kind: input (uncached), cache write, cache read, output. `bypass_tokens` is
    what the provider counted beyond Metis (traffic on the key that never passed through
    Metis), `unreported_tokens` what Metis recorded beyond the provider; drift is the
    provider's cost minus Metis's, and its share of the provider's cost."""

    day = models.DateField()
    upstream = models.CharField(max_length=100)
    provider = models.CharField(max_length=20)
    api_key_id = models.CharField(max_length=100, blank=True, default="")
    model = models.CharField(max_length=200, blank=True, default="")
    gateway_calls = models.BigIntegerField(default=0)
    provider_requests = models.BigIntegerField(default=0)
    gateway_input_tokens = models.BigIntegerField(default=0)
    gateway_cache_write_tokens = models.BigIntegerField(default=0)
    gateway_cache_read_tokens = models.BigIntegerField(default=0)
    gateway_output_tokens = models.BigIntegerField(default=0)
    provider_input_tokens = models.BigIntegerField(default=0)
    provider_cache_write_tokens = models.BigIntegerField(default=0)
    provider_cache_read_tokens = models.BigIntegerField(default=0)
    provider_output_tokens = models.BigIntegerField(default=0)
    gateway_cost_usd = MoneyField(default=0)
    provider_cost_usd = MoneyField(null=True, blank=True)
    bypass_tokens = models.BigIntegerField(default=0)
    unreported_tokens = models.BigIntegerField(default=0)
    drift_usd = MoneyField(default=0)
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-day", "upstream", "model"]
        constraints = [
            models.UniqueConstraint(
                fields=["day", "upstream", "api_key_id", "model"], name="reconciliation_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.upstream} {self.model}: drift {self.drift_usd}"

    def figures(self) -> tuple:
        """What a re-run compares to decide whether anything changed (and alerts again)."""
        tokens = [
            getattr(self, f"{side}_{kind}_tokens")
            for side in ("gateway", "provider")
            for kind in TOKEN_KINDS
        ]
        return (*tokens, self.gateway_cost_usd, self.provider_cost_usd)
