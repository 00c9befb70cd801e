"""The quotas a key's call must pass: its key's, its owner's and its team's."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Q

from analytics import budgets as analytics_budgets
from gateway.cache import LoadCache
from identity.models import GatewayKey, Quota


@dataclass(frozen=True, slots=True)
class Rule:
    """A Quota row, as the gateway holds it."""

    scope: str  # "team" | "user" | "key"
    scope_id: str  # team name, username or key id (what the analytics rows carry)
    period: str
    soft: Decimal | None
    hard: Decimal | None
    rpm: int | None
    tpm: int | None

    @property
    def label(self) -> str:
        return f"{self.scope} {self.scope_id}"


def _load_rules(key_id: str) -> tuple[Rule, ...]:
    key = GatewayKey.objects.select_related("user", "team").filter(pk=key_id).first()
    if key is None:
        return ()
    match = Q(key_id=key.id)
    if key.user_id:
        match |= Q(user_id=key.user_id)
    if key.team_id:
        match |= Q(team_id=key.team_id)
    rules = []
    for quota in Quota.objects.filter(match).select_related("team", "user"):
        caps = (quota.soft_cap_usd, quota.hard_cap_usd)
        rates = (quota.requests_per_minute, quota.tokens_per_minute)
        rules.append(Rule(*analytics_budgets.scope_of(quota), quota.period, *caps, *rates))
    return tuple(rules)


_rules: LoadCache[str, tuple[Rule, ...]] = LoadCache(_load_rules)


async def rules_for(key_id: str) -> tuple[Rule, ...]:
    return await _rules.get(key_id)


def forget_rules() -> None:
    _rules.clear()
