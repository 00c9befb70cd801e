"""Two real `metis serve` processes started together on one fresh METIS_HOME: they make
one admin whose printed password works, and they count failed sign-ins together.

The tests share the pair (a fresh start is the expensive part) and run in file order:
the last one locks the admin account out."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.serve_process import Serve, csrf_token, start_serve

LIMIT = 10  # METIS_LOGIN_FAILURE_LIMIT's default


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> Iterator[tuple[Serve, Serve]]:
    home = tmp_path_factory.mktemp("fresh") / "home"
    # METIS_PROXY_COUNT=1: each test signs in from its own X-Forwarded-For address.
    servers = (
        start_serve(home, "a", METIS_PROXY_COUNT="1"),
        start_serve(home, "b", METIS_PROXY_COUNT="1"),
    )
    try:
        deadline = time.monotonic() + 120
        for server in servers:
            server.wait_until_up(deadline)
        yield servers
    finally:
        for server in servers:
            server.stop()


def sign_in(server: Serve, path: str, username: str, password: str, address: str):
    with httpx.Client(headers={"X-Forwarded-For": address}) as client:
        token = csrf_token(client, f"{server.url}{path}")
        form = {"csrfmiddlewaretoken": token, "username": username, "password": password}
        if path.startswith("/admin/"):
            form["next"] = "/admin/"  # as the admin's own form sends it
        return client.post(f"{server.url}{path}", data=form)


def test_two_processes_starting_at_once_make_one_admin_whose_password_works(pair):
    passwords = [p for p in (server.printed_password() for server in pair) if p]
    assert len(passwords) == 1, [server.output() for server in pair]
    with sqlite3.connect(pair[0].home / "metis.db") as database:
        admins = database.execute("SELECT username FROM identity_user WHERE is_superuser")
        assert admins.fetchall() == [("admin",)]
    for server in pair:  # each process, signing in with the one printed password
        response = sign_in(server, "/admin/login/", "admin", passwords[0], "10.0.0.1")
        assert response.status_code == 302 and response.headers["location"] == "/admin/"


def test_failed_sign_ins_are_counted_across_processes_per_account_and_address(pair):
    answers = [
        sign_in(pair[n % 2], "/login/", "admin", f"wrong-{n}", "10.0.0.2").status_code
        for n in range(30)
    ]
    # LIMIT-1 wrong passwords are told so; the LIMIT-th locks; the rest are not tried.
    assert answers == [200] * (LIMIT - 1) + [429] * (30 - LIMIT + 1)
    password = next(p for p in (server.printed_password() for server in pair) if p)
    locked = sign_in(pair[0], "/login/", "admin", password, "10.0.0.3")  # the account
    assert locked.status_code == 429
    assert "Too many failed sign-ins" in locked.text and "15 minutes" in locked.text
    admin = sign_in(pair[1], "/admin/login/", "admin", password, "10.0.0.3")
    assert admin.status_code == 429
    other = sign_in(pair[1], "/login/", "someone-else", "x", "10.0.0.2")  # the address
    assert other.status_code == 429
