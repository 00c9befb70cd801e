"""Which upstream model serves a call.

The `model` field may be a provider id (`claude-sonnet-4-6`), a prefixed id
(`anthropic:claude-haiku-4-5`, `ollama:llama3`) or an alias (`haiku`, or an
operator's `ModelAlias`). When it is absent, the routing chain decides:
the workspace's `.metis/routing.yaml`, then the operator's pattern routes,
then the workspace default. The step that decided is recorded in
`route.decided` as `decided_by`.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings

from analytics import pricing
from analytics.pricing import Price
from gateway import passthrough
from gateway.auth import Caller
from gateway.cache import LoadCache
from gateway.errors import GatewayError, bad_request
from gateway.models import BudgetWebhook, ModelAlias, PriceOverride, RoutePattern
from gateway.providers import PROVIDERS, Provider
from gateway.shapes import Shape
from identity.models import ProviderCredential

logger = logging.getLogger(__name__)

BUILTIN_ALIASES = {
    "haiku": "anthropic:claude-haiku-4-5",
    "sonnet": "anthropic:claude-sonnet-4-6",
    "opus": "anthropic:claude-opus-4-6",
}
# Model-id prefixes that name their provider without a `provider:` prefix.
INFERRED = (
    ("claude-", "anthropic"),
    ("gpt-", "openai"),
    ("chatgpt-", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("codex-", "openai"),
    ("ft:", "openai"),
)
ADAPTER_FOR = {"anthropic": "anthropic", "openai": "openai", "openai-compatible": "openai"}


@dataclass(frozen=True, slots=True)
class Upstream:
    name: str  # the provider name in events: anthropic, openai, or a credential's name
    adapter: Provider
    base_url: str
    api_key: str
    # Whose price list applies: first-party credentials (whatever their name) are priced as
    # their provider; an OpenAI-compatible server only by its own name (operator overrides).
    price_provider: str


@dataclass(frozen=True, slots=True)
class Route:
    upstream: Upstream
    model: str  # the id sent upstream
    requested_model: str | None
    decided_by: str  # request | routing_rules | pattern_route | workspace_default
    # The operator's credential, or in pass-through mode the client's key for this provider.
    api_key: str = dataclasses.field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class Catalog:
    """The operator's routing configuration, reloaded at most once a second."""

    aliases: dict[str, str]
    upstreams: dict[str, Upstream]
    patterns: tuple[tuple[str, str, str], ...]  # (field, glob, model)
    prices_exact: dict[str, Price]
    prices_prefix: dict[str, Price]
    webhooks: tuple[str, ...] = ()
    models: frozenset[str] = frozenset()  # ids the operator named: alias targets, overrides


def _env_upstreams() -> dict[str, Upstream]:
    return {
        name: Upstream(name, PROVIDERS[name], base_url, api_key, name)
        for name, base_url, api_key in (
            ("anthropic", settings.METIS_ANTHROPIC_BASE_URL, settings.METIS_ANTHROPIC_API_KEY),
            ("openai", settings.METIS_OPENAI_BASE_URL, settings.METIS_OPENAI_API_KEY),
        )
    }


def _load_catalog() -> Catalog:
    upstreams = _env_upstreams()
    for cred in ProviderCredential.objects.filter(is_active=True):
        adapter = ADAPTER_FOR[cred.provider]
        default = upstreams.get(adapter)
        base_url = cred.base_url or (default.base_url if default else "")
        priced_as = cred.name if cred.provider == "openai-compatible" else cred.provider
        upstreams[cred.name] = Upstream(
            cred.name,
            PROVIDERS[adapter],
            base_url,
            cred.api_key,
            priced_as,
        )
    aliases = dict(BUILTIN_ALIASES)
    aliases.update(ModelAlias.objects.values_list("alias", "target"))
    patterns = tuple(RoutePattern.objects.values_list("field", "pattern", "model"))
    exact: dict[str, Price] = {}
    prefix: dict[str, Price] = {}
    for row in PriceOverride.objects.all():
        (prefix if row.match_prefix else exact)[row.model] = row.price()
    webhooks = tuple(BudgetWebhook.objects.filter(is_active=True).values_list("url", flat=True))
    named = {target.rpartition(":")[2] for target in aliases.values()} | exact.keys()
    models = frozenset(name.lower() for name in named)
    return Catalog(aliases, upstreams, patterns, exact, prefix, webhooks, models)


_catalog: LoadCache[None, Catalog] = LoadCache(lambda _: _load_catalog())


async def catalog() -> Catalog:
    return await _catalog.get(None)


def price_overrides() -> tuple[dict[str, Price], dict[str, Price]]:
    """The operator's prices from the last loaded catalog: (exact ids, id prefixes)."""
    loaded = _catalog.peek(None)
    return (loaded.prices_exact, loaded.prices_prefix) if loaded else ({}, {})


def price(price_provider: str, model: str) -> Price | None:
    """The one price lookup, for pricing a call and for reserving its worst case alike:
    the operator's overrides (exact id, then longest prefix) before the bundled table.
    None for an unpriced model."""
    exact, prefixed = price_overrides()
    return exact.get(model) or pricing.find_price(price_provider, model, prefixed)


def webhook_urls() -> tuple[str, ...]:
    """The operator's budget webhooks from the last loaded catalog."""
    loaded = _catalog.peek(None)
    return loaded.webhooks if loaded else ()


def configured_models() -> frozenset[str]:
    """The model ids the operator named, from the last loaded catalog (metrics labels)."""
    loaded = _catalog.peek(None)
    return loaded.models if loaded else frozenset()


def forget_catalog() -> None:
    _catalog.clear()


def resolve_name(name: str, cat: Catalog) -> tuple[Upstream, str]:
    """A model name → (upstream, upstream model id), following at most a few aliases."""
    for _ in range(5):
        if name in cat.aliases:
            name = cat.aliases[name]
            continue
        prefix, sep, rest = name.partition(":")
        if sep and prefix in cat.upstreams and rest:
            # `anthropic:haiku`: the alias names the model, the caller's prefix the upstream.
            target_prefix, _, target = cat.aliases.get(rest, rest).rpartition(":")
            if target_prefix not in cat.upstreams:
                target = cat.aliases.get(rest, rest)
            return cat.upstreams[prefix], target
        for start, provider in INFERRED:
            if name.startswith(start):
                return cat.upstreams[provider], name
        break
    raise GatewayError(
        404,
        f"Unknown model {name!r}: use a provider model id (claude-sonnet-4-6, gpt-5-mini), "
        f"provider:model (anthropic:claude-haiku-4-5), or an alias "
        f"({', '.join(sorted(cat.aliases))}).",
        param="model",
    )


async def route(body: dict[str, Any], caller: Caller, shape: Shape) -> Route:
    requested = body.get("model")
    if requested is not None and not isinstance(requested, str):
        raise bad_request("model must be a string", param="model")
    cat = await catalog()
    decided_by = "request"
    name = requested.strip() if requested else ""
    if not name.isprintable():
        # No model id has control characters, and PostgreSQL refuses NUL in the call's record.
        raise bad_request("model must not contain control characters", param="model")
    if not name:
        name, decided_by = chain(body, caller, shape, cat)
    upstream, model = resolve_name(name, cat)
    key = caller.key
    if key.allowed_models and not any(
        allowed_entry_matches(entry, upstream, model, cat) for entry in key.allowed_models
    ):
        raise GatewayError(
            403,
            f"Gateway key {key.id} may not use model {name!r}; allowed: "
            f"{', '.join(key.allowed_models)}.",
            param="model",
        )
    return Route(upstream, model, requested, decided_by, api_key_for(upstream, caller, model))


def api_key_for(upstream: Upstream, caller: Caller, model: str) -> str:
    """The key a call to `upstream` is sent with: the client's own in pass-through mode
    (a 400 when it brought none for this provider), else the operator's (503 if none)."""
    if caller.provider_keys:
        return passthrough.key_for(caller.provider_keys, adapter=upstream.adapter.name,
                                   provider=upstream.name, model=model)  # fmt: skip
    if not upstream.api_key:
        raise GatewayError(
            503,
            f"No credentials for provider {upstream.name!r}: add one in the admin "
            f"(Provider credentials) or set METIS_{upstream.name.upper()}_API_KEY.",
            code="provider_not_configured",
        )
    return upstream.api_key


def allowed_entry_matches(entry: str, upstream: Upstream, model: str, cat: Catalog) -> bool:
    """A key's allowed entry (id, provider:id or alias) covers this model, or a dated
    version of it (`claude-haiku-4-5` covers `claude-haiku-4-5-20251001`)."""
    try:
        allowed_upstream, allowed_model = resolve_name(entry, cat)
    except GatewayError:
        return False
    if allowed_upstream.name != upstream.name:
        return False
    suffix = model.removeprefix(allowed_model)
    return suffix == "" or (suffix.startswith("-") and suffix[1:].isdigit())


def chain(body: dict[str, Any], caller: Caller, shape: Shape, cat: Catalog) -> tuple[str, str]:
    facts = {
        "user": caller.user or "",
        "key": caller.key.name,
        "workspace": caller.key.workspace_path,
        "shape": shape.value,
        "stream": bool(body.get("stream")),
        "tools": bool(body.get("tools")),
    }
    if model := rules_model(caller.key.workspace_path, facts):
        return model, "routing_rules"
    for field, pattern, model in cat.patterns:
        if fnmatch.fnmatchcase(str(facts[field]), pattern):
            return model, "pattern_route"
    if caller.key.default_model:
        return caller.key.default_model, "workspace_default"
    raise bad_request(
        "model is required: the request has none, and no routing rule "
        "(.metis/routing.yaml), pattern route or workspace default matched.",
        param="model",
    )


_rules_cache: dict[str, tuple[float, dict[str, Any]]] = {}


def rules_model(workspace_path: str, facts: dict[str, Any]) -> str | None:
    """The model `.metis/routing.yaml` picks for these facts, if any.

    rules:                       # first match wins
      - when: {user: "ci-*", tools: true}
        model: haiku
    default: sonnet              # when no rule matched
    """
    rules = _read_rules(Path(workspace_path) / ".metis" / "routing.yaml")
    for rule in rules.get("rules") or []:
        when = rule.get("when") or {}
        if all(_matches(facts.get(field), want) for field, want in when.items()):
            return str(rule["model"])
    return str(rules["default"]) if rules.get("default") else None


def _matches(fact: Any, want: Any) -> bool:
    if isinstance(want, bool) or isinstance(fact, bool):
        return fact == want
    return fnmatch.fnmatchcase(str(fact or ""), str(want))


def _read_rules(path: Path) -> dict[str, Any]:
    try:
        mtime = os.stat(path).st_mtime
    except OSError:
        return {}
    cached = _rules_cache.get(str(path))
    if cached and cached[0] == mtime:
        return cached[1]
    try:
        rules = yaml.safe_load(path.read_text()) or {}
        valid = isinstance(rules, dict) and all(
            isinstance(r, dict) and r.get("model") for r in rules.get("rules") or []
        )
    except (OSError, yaml.YAMLError) as exc:
        logger.warning("ignoring %s: %s", path, exc)
        rules, valid = {}, True
    if not valid:
        logger.warning("ignoring %s: expected 'rules: [{when: {...}, model: ...}]'", path)
        rules = {}
    _rules_cache[str(path)] = (mtime, rules)
    return rules


@dataclass(frozen=True, slots=True)
class ModelEntry:
    id: str
    provider: str


# genai-prices lists every priced model; /v1/models shows the chat models each provider's
# API serves: not ':'-suffixed variants (`gpt-4o:extended`), fine-tune stubs (`ft:…`,
# `….ft-`), open-weight models OpenAI does not host (`gpt-oss-…`), or other modalities.
CHAT_PREFIXES = ("claude-", "gpt-", "o1", "o3", "o4", "chatgpt-", "codex-")
_NOT_CHAT = ("image", "audio", "realtime", "tts", "transcribe", "search", "embedding",
             "live", "instruct", "oss-", "ft:", ".ft-", ":")  # fmt: skip


@functools.cache
def priced_chat_models(provider: str) -> tuple[str, ...]:
    """The chat model ids of a first-party provider's price table, in its order."""
    from genai_prices import data

    return tuple(
        model.id
        for table in data.providers
        if table.id == provider
        for model in table.models
        if model.id.startswith(CHAT_PREFIXES) and not any(p in model.id for p in _NOT_CHAT)
    )


def can_call(upstream: Upstream, caller: Caller) -> bool:
    """Whether a call to `upstream` has a key: the operator's, or in pass-through mode one
    of the client's for that provider."""
    if caller.provider_keys:
        return any(k.family == upstream.adapter.name for k in caller.provider_keys)
    return bool(upstream.api_key)


async def available_models(caller: Caller) -> list[ModelEntry]:
    """What this key can call, for /v1/models: its allowed list when it has one, else the
    aliases and the priced chat models of every provider with credentials. A provider
    credential that is not a provider's default lists its models as `name:model`;
    an OpenAI-compatible server's models show through the aliases that name them."""
    cat = await catalog()
    names = list(caller.key.allowed_models)
    if not names:
        names = list(cat.aliases)
        for upstream in cat.upstreams.values():
            for model in priced_chat_models(upstream.price_provider):
                default, _ = resolve_name(model, cat)
                names.append(model if default is upstream else f"{upstream.name}:{model}")
    entries: dict[str, ModelEntry] = {}
    for name in names:
        try:
            upstream, _ = resolve_name(name, cat)
        except GatewayError:
            continue
        if can_call(upstream, caller):
            entries.setdefault(name, ModelEntry(name, upstream.name))
    return list(entries.values())
