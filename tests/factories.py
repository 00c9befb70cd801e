"""Keyword-only factories: a test says what matters about its objects and nothing else."""

from __future__ import annotations

import itertools
from datetime import datetime

from identity.models import GatewayKey, Team, User, Workspace

_numbers = itertools.count(1)


def make_user(*, username: str | None = None, is_superuser: bool = False) -> User:
    user = User.objects.create(
        username=username or f"user-{next(_numbers)}",
        is_staff=is_superuser,
        is_superuser=is_superuser,
    )
    return user


def make_team(*, name: str | None = None) -> Team:
    return Team.objects.create(name=name or f"team-{next(_numbers)}")


def make_workspace(*, path: str | None = None) -> Workspace:
    path = path or f"/srv/projects/project-{next(_numbers)}"
    return Workspace.objects.create(name=path.rstrip("/").rsplit("/", 1)[-1], path=path)


def make_key(
    *,
    name: str | None = None,
    team: Team | None = None,
    user: User | None = None,
    workspace: Workspace | None = None,
    revoked: bool = False,
    expires_at: datetime | None = None,
    allowed_models: list[str] | None = None,
) -> tuple[GatewayKey, str]:
    """An issued key and its plaintext token (the only moment the token exists)."""
    key, token = GatewayKey.issue(
        name=name or f"key-{next(_numbers)}",
        workspace=workspace or make_workspace(),
        user=user,
        team=team,
        allowed_models=allowed_models,
        expires_at=expires_at,
    )
    if revoked:
        key.revoke()
    return key, token
