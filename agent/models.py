"""Agent sessions and their turns: the conversation `metis serve` keeps for a client, so
the client sends only its new message (agent/api.py).

A session belongs to the gateway key that made it; its user, team and workspace are the
key's, copied as the analytics rows copy them, so a viewer sees the sessions it would see
the calls of (`analytics.scope.Viewer.q()` reads the same column names).
"""

from __future__ import annotations

from django.db import models

from analytics.models import MoneyField


class AgentSession(models.Model):
    id = models.CharField(primary_key=True, max_length=40)  # ses_<ULID>
    title = models.CharField(max_length=200, blank=True, default="")
    model = models.CharField(max_length=200, blank=True, default="")  # "": routing decides
    system = models.TextField(blank=True, default="")
    tools = models.JSONField(default=list)  # Anthropic-style tool definitions
    gateway_key_id = models.CharField(max_length=32)
    user = models.CharField(max_length=200, blank=True, default="")  # the key's owner
    team = models.CharField(max_length=100, blank=True, default="")
    workspace = models.CharField(max_length=1024, blank=True, default="")  # its path
    turn_count = models.PositiveIntegerField(default=0)
    total_cost_usd = MoneyField(default=0)
    total_input_tokens = models.BigIntegerField(default=0)
    total_output_tokens = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "agent_session"
        indexes = [
            models.Index(fields=["gateway_key_id", "-updated_at"], name="agent_session_key"),
            models.Index(fields=["team", "-updated_at"], name="agent_session_team"),
        ]

    def __str__(self) -> str:
        return self.id


class Turn(models.Model):
    class Status(models.TextChoices):
        COMPLETED = "completed"
        CANCELLED = "cancelled"
        ERROR = "error"

    id = models.CharField(primary_key=True, max_length=40)  # turn_<ULID>
    session = models.ForeignKey(AgentSession, on_delete=models.CASCADE, related_name="turns")
    index = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices)
    user_message = models.TextField(blank=True, default="")  # "" with tool_results
    tool_results = models.JSONField(null=True, blank=True)
    text = models.TextField(blank=True, default="")
    tool_calls = models.JSONField(default=list)
    stop_reason = models.CharField(max_length=40, blank=True, default="")
    error = models.TextField(blank=True, default="")
    model = models.CharField(max_length=200, blank=True, default="")
    provider = models.CharField(max_length=100, blank=True, default="")
    decided_by = models.CharField(max_length=40, blank=True, default="")
    call_id = models.CharField(max_length=64, blank=True, default="")
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cache_read_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    cost_usd = MoneyField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "agent_turn"
        ordering = ["index"]
        constraints = [
            models.UniqueConstraint(fields=["session", "index"], name="agent_turn_index_unique")
        ]

    def __str__(self) -> str:
        return self.id
