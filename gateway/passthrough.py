"""Pass-through mode: provider keys the client brought, and the one provider each may reach.

In pass-through mode the gateway token comes in `x-metis-token` and the client's own
provider keys in `x-api-key` and/or `Authorization: Bearer`. Each key is attributed to a
provider and is only ever sent there:

- a key starting `sk-ant-` is Anthropic's (API keys `sk-ant-api…`, Claude Code's OAuth
  tokens `sk-ant-oat…`);
- any other key is for OpenAI's API: OpenAI, or the OpenAI-compatible server the call is
  routed to.

The header does not decide: the anthropic SDK (2.x) sends its `api_key` as
`Authorization: Bearer`, as Claude Code does its OAuth token, so both headers carry
Anthropic keys in practice. The client may send two keys, one in each header.

A call whose provider has none of the client's keys is refused with a 400 that says which
key to add; it never falls back to the operator's stored credential, which the client chose
not to use. So a cross-shape call needs the other provider's key too: an openai SDK client
calling a Claude model adds `x-api-key: sk-ant-…` to its headers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.errors import bad_request
from identity import keys

ANTHROPIC_PREFIX = "sk-ant-"
FAMILY_NAMES = {"anthropic": "Anthropic", "openai": "OpenAI"}


@dataclass(frozen=True, slots=True)
class ClientKey:
    """A provider key the client sent; never stored or logged (hence no repr of it)."""

    family: str  # the provider adapter it may be sent to: "anthropic" or "openai"
    header: str  # where it came: "x-api-key" or "authorization"
    value: str = field(repr=False)


def client_keys(x_api_key: str | None, bearer: str | None) -> tuple[ClientKey, ...]:
    """The keys the client sent in either header, each attributed to its provider."""
    found: list[ClientKey] = []
    for header, value in (("x-api-key", x_api_key), ("authorization", bearer)):
        value = (value or "").strip()
        if not value or any(k.value == value for k in found):  # some clients send both
            continue
        if keys.looks_like_token(value):  # our own token, sent twice: never a provider's
            continue
        family = "anthropic" if value.startswith(ANTHROPIC_PREFIX) else "openai"
        found.append(ClientKey(family, header, value))
    return tuple(found)


def key_for(sent: tuple[ClientKey, ...], *, adapter: str, provider: str, model: str) -> str:
    """The client's key for `provider` (served by `adapter`), or a 400 saying which to add."""
    for key in sent:
        if key.family == adapter:
            return key.value
    which = " and ".join(f"an {FAMILY_NAMES[k.family]} key (in {k.header})" for k in sent)
    other = "x-api-key" if sent[0].header == "authorization" else "Authorization: Bearer"
    wanted = "your Anthropic key (sk-ant-…)" if adapter == "anthropic" else f"your {provider} key"
    raise bad_request(
        f"Pass-through mode: {model!r} is served by {provider}, and you sent {which}. A "
        f"provider key is only ever sent to its own provider: add {wanted} in {other}, "
        f"or call a model of the provider whose key you sent.",
        param="model",
    )
