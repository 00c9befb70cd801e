"""Run the test OpenID provider: `python -m tests.oidc_provider.serve SPEC.json PORT`.

SPEC holds the confidential client (id, secret, redirect URI) and the users (username,
password, email, groups). Migrates a fresh SQLite file, creates them, then serves with
Django's own server in this process until killed."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main(spec_path: str, port: str) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.oidc_provider.settings"
    import django

    django.setup()
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from oauth2_provider.models import Application

    spec = json.loads(Path(spec_path).read_text())
    call_command("migrate", verbosity=0, interactive=False)
    for person in spec["users"]:
        user = User.objects.create_user(
            person["username"], email=person["email"], password=person["password"]
        )
        for name in person.get("groups", []):
            user.groups.add(Group.objects.get_or_create(name=name)[0])
    Application.objects.create(
        name="Metis",
        client_id=spec["client_id"],
        client_secret=spec["client_secret"],
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=spec["redirect_uri"],
        algorithm=Application.RS256_ALGORITHM,
    )
    call_command("runserver", f"127.0.0.1:{port}", use_reloader=False, use_threading=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
