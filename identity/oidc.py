"""Single sign-on with OpenID Connect, configured from METIS_OIDC_* (see the README).

authlib speaks the protocol: the provider's discovery document, PKCE, state and nonce,
and the ID token's signature, issuer, audience and expiry. This module decides who the
person is in Metis: the one user with that email (case-insensitive), or a new user when
METIS_OIDC_CREATE_USERS allows it, a member of the teams METIS_OIDC_TEAM_CLAIM names.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.django_client import DjangoOAuth2App, OAuth
from django.conf import settings
from django.contrib.auth import login
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from identity.models import Team, TeamMembership, User

logger = logging.getLogger(__name__)
NEXT = "metis_oidc_next"


class SignInRefused(Exception):
    """The provider vouched for someone Metis will not sign in; the message says why."""


def name() -> str | None:
    """The provider's name for the "Sign in with …" button; None when SSO is off."""
    return settings.METIS_OIDC_NAME if settings.METIS_OIDC_ISSUER else None


def client() -> DjangoOAuth2App:
    return _client(
        settings.METIS_OIDC_ISSUER,
        settings.METIS_OIDC_CLIENT_ID,
        settings.METIS_OIDC_CLIENT_SECRET,
        settings.METIS_OIDC_SCOPES,
    )


@functools.cache
def _client(issuer: str, client_id: str, secret: str, scopes: str) -> DjangoOAuth2App:
    # One per configuration, so the discovery document and keys are fetched once.
    return OAuth().register(
        "metis",
        client_id=client_id,
        client_secret=secret,
        server_metadata_url=f"{issuer}/.well-known/openid-configuration",
        client_kwargs={"scope": scopes, "code_challenge_method": "S256", "default_timeout": 10},
    )


def start(request: HttpRequest) -> HttpResponse:
    """`/login/oidc/`: off to the provider, remembering where to land afterwards."""
    if not name():
        raise Http404("single sign-on is not configured")
    target = request.GET.get("next", "")
    if url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        request.session[NEXT] = target
    try:
        discovered = client().load_server_metadata()
        if discovered.get("issuer", "").rstrip("/") != settings.METIS_OIDC_ISSUER:
            raise SignInRefused(
                f"{name()} names itself {discovered.get('issuer')!r}, not the configured "
                f"METIS_OIDC_ISSUER {settings.METIS_OIDC_ISSUER!r}."
            )
        callback_url = request.build_absolute_uri(reverse("oidc-callback"))
        return client().authorize_redirect(request, callback_url)
    except (requests.RequestException, ValueError) as exc:
        logger.warning("OpenID discovery at %s failed: %s", settings.METIS_OIDC_ISSUER, exc)
        return refused(request, f"{name()} cannot be reached right now; try again shortly.")
    except SignInRefused as exc:
        return refused(request, str(exc))


def callback(request: HttpRequest) -> HttpResponse:
    """`/login/oidc/callback/`: the provider sends the person back with a code."""
    if not name():
        raise Http404("single sign-on is not configured")
    try:
        token = client().authorize_access_token(request)
        user = user_for(claims_of(token))
    except OAuthError as exc:
        detail = (exc.description or exc.error or "the answer was not valid").rstrip(".")
        return refused(request, f"Sign-in with {name()} did not complete ({detail}); try again.")
    except requests.RequestException as exc:
        logger.warning("OpenID token exchange with %s failed: %s", name(), exc)
        return refused(request, f"{name()} cannot be reached right now; try again shortly.")
    except SignInRefused as exc:
        return refused(request, str(exc))
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return redirect(request.session.pop(NEXT, "") or settings.LOGIN_REDIRECT_URL)


def claims_of(token: dict[str, Any]) -> dict[str, Any]:
    """The ID token's claims, completed from the userinfo endpoint when the email or the
    team claim is only there (many providers keep the ID token small)."""
    claims = dict(token.get("userinfo") or {})
    if not claims:
        raise SignInRefused(f"{name()} sent no ID token; is the 'openid' scope allowed?")
    team_claim = settings.METIS_OIDC_TEAM_CLAIM
    if "email" not in claims or (team_claim and team_claim not in claims):
        extra = client().userinfo(token=token)
        if extra.get("sub") == claims.get("sub"):
            claims = {**extra, **claims}
    return claims


def user_for(claims: dict[str, Any]) -> User:
    email = str(claims.get("email") or "").strip()
    if not email:
        raise SignInRefused(f"{name()} did not say your email address, so Metis cannot match it.")
    if claims.get("email_verified") is False:
        raise SignInRefused(f"{name()} has not verified the email address {email}.")
    matches = list(User.objects.filter(email__iexact=email)[:2])
    if len(matches) > 1:
        raise SignInRefused(
            f"More than one Metis account has the email address {email}; an operator must "
            "give each account its own address before you can sign in this way."
        )
    if matches:
        user = matches[0]
        if not user.is_active:
            raise SignInRefused("This Metis account is disabled; ask an operator.")
    elif settings.METIS_OIDC_CREATE_USERS:
        user = create_user(email, claims)
    else:
        raise SignInRefused(
            f"No Metis account has the email address {email}; ask an operator to add you."
        )
    join_teams(user, claims)
    return user


def create_user(email: str, claims: dict[str, Any]) -> User:
    username = email.lower()
    if User.objects.filter(username=username).exists():
        raise SignInRefused(
            f"A Metis account named {username} exists with another email address; "
            "ask an operator to fix it."
        )
    user = User(
        username=username,
        email=email,
        first_name=str(claims.get("given_name") or "")[:150],
        last_name=str(claims.get("family_name") or "")[:150],
    )
    user.set_unusable_password()  # signs in through the provider only
    user.save()
    logger.info("created user %s on first sign-in with %s", username, name())
    return user


def join_teams(user: User, claims: dict[str, Any]) -> None:
    """Membership (role member) in each existing team the claim names. Names with no team
    are ignored, never created: teams, their budgets and owners are the operator's."""
    claim = settings.METIS_OIDC_TEAM_CLAIM
    if not claim:
        return
    value = claims.get(claim)
    names = {value} if isinstance(value, str) else set()
    if isinstance(value, list):
        names = {v for v in value if isinstance(v, str)}
    teams = list(Team.objects.filter(name__in=names))
    with transaction.atomic():
        for team in teams:
            TeamMembership.objects.get_or_create(user=user, team=team)
    if unknown := names - {team.name for team in teams}:
        logger.info("%s: no team named %s; ignored", user.username, ", ".join(sorted(unknown)))


def refused(request: HttpRequest, message: str) -> HttpResponse:
    context = {"sso_error": message, "sso_name": name(), "next": ""}
    return render(request, "identity/login.html", context, status=403)
