"""/login/ and /logout/ with Django's test client: who may sign in, where they land, the
lockout after failed attempts, and Secure cookies behind an https proxy."""

from __future__ import annotations

import socket

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from identity.models import User
from identity.signin import client_address
from metis_site.settings import envheader
from tests.factories import make_user

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-test-password"
HTTPS = {"HTTP_X_FORWARDED_PROTO": "https"}


@pytest.fixture(autouse=True)
def login_required(settings) -> None:
    settings.METIS_LOCAL_MODE = False


@pytest.fixture
def dana() -> User:
    user = make_user(username="dana")
    user.set_password(PASSWORD)
    user.save()
    return user


def sign_in(client: Client, username: str, password: str, **extra):
    return client.post("/login/", {"username": username, "password": password}, **extra)


def test_a_non_staff_user_signs_in_and_lands_on_the_dashboard(client, dana):
    response = sign_in(client, "dana", PASSWORD)
    assert response.status_code == 302 and response["Location"] == "/dashboard/"
    page = client.get("/dashboard/").content.decode()
    assert "dana" in page and "Sign out" in page


def test_sign_in_returns_to_the_page_asked_for_but_never_off_site(client, dana):
    back = client.post(
        "/login/", {"username": "dana", "password": PASSWORD, "next": "/dashboard/?tab=activity"}
    )
    assert back["Location"] == "/dashboard/?tab=activity"
    client.logout()
    away = client.post(
        "/login/", {"username": "dana", "password": PASSWORD, "next": "https://evil.example/"}
    )
    assert away["Location"] == "/dashboard/"


def test_a_wrong_password_or_an_inactive_account_is_refused_on_the_page(client, dana):
    wrong = sign_in(client, "dana", "nope")
    assert wrong.status_code == 200 and b"correct username and password" in wrong.content
    dana.is_active = False
    dana.save()
    assert b"correct username and password" in sign_in(client, "dana", PASSWORD).content
    assert client.get("/dashboard/").status_code == 302


def test_the_login_page_offers_single_sign_on_only_when_configured(client, settings):
    assert b"Sign in with" not in client.get("/login/").content
    settings.METIS_OIDC_ISSUER = "https://login.example.com"
    settings.METIS_OIDC_NAME = "Okta"
    page = client.get("/login/?next=/dashboard/%3Ftab%3Dactivity").content.decode()
    assert "Sign in with Okta" in page
    assert 'href="/login/oidc/?next=/dashboard/%3Ftab%3Dactivity"' in page


def test_single_sign_on_routes_answer_404_when_it_is_off(client):
    assert client.get("/login/oidc/").status_code == 404
    assert client.get("/login/oidc/callback/?code=x&state=y").status_code == 404


def test_logout_is_a_post_with_the_csrf_token(dana):
    client = Client(enforce_csrf_checks=True)
    client.force_login(dana)
    assert client.get("/logout/").status_code == 405
    assert client.post("/logout/").status_code == 403  # no token
    token = client.get("/dashboard/").context["csrf_token"]
    response = client.post("/logout/", {"csrfmiddlewaretoken": str(token)})
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert client.get("/dashboard/").status_code == 302


def test_an_htmx_swap_without_a_session_is_sent_to_the_login_page(client):
    response = client.get(
        "/dashboard/?tab=activity",
        HTTP_HX_REQUEST="true",
        HTTP_HX_CURRENT_URL="http://testserver/dashboard/?tab=cost",
    )
    assert response["HX-Redirect"] == "/login/?next=/dashboard/%3Ftab%3Dcost"


def test_thirty_wrong_passwords_get_ten_tries_then_a_clear_lockout(client, dana):
    answers = [sign_in(client, "dana", f"wrong-{n}").status_code for n in range(30)]
    assert answers == [200] * 9 + [429] * 21
    locked = sign_in(client, "dana", PASSWORD)
    assert locked.status_code == 429
    assert "Sign-in is locked for 15 minutes" in locked.content.decode()
    assert client.get("/dashboard/").status_code == 302


def test_the_admin_login_is_throttled_too(client, admin_user):
    for n in range(10):
        client.post("/admin/login/", {"username": "admin", "password": f"wrong-{n}"})
    response = client.post("/admin/login/", {"username": "admin", "password": "password"})
    assert response.status_code == 429 and b"Too many failed sign-ins" in response.content


def test_a_lockout_follows_the_account_to_another_address(client, dana):
    for n in range(10):
        sign_in(client, "dana", f"wrong-{n}", REMOTE_ADDR="10.0.0.1")
    assert sign_in(client, "dana", PASSWORD, REMOTE_ADDR="10.0.0.2").status_code == 429
    assert sign_in(client, "other", "x", REMOTE_ADDR="10.0.0.2").status_code == 200


def test_https_through_the_proxy_gets_secure_cookies_and_plain_http_still_works(
    client, dana, settings
):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    page = client.get("/login/", **HTTPS)
    assert page.cookies["csrftoken"]["secure"] is True
    signed_in = sign_in(client, "dana", PASSWORD, **HTTPS)
    assert signed_in.cookies["sessionid"]["secure"] is True
    plain = Client()
    assert plain.get("/login/").cookies["csrftoken"]["secure"] == ""
    response = sign_in(plain, "dana", PASSWORD)
    assert response.status_code == 302 and response.cookies["sessionid"]["secure"] == ""
    assert plain.get("/dashboard/").status_code == 200


def test_the_proxy_header_setting_is_read_as_header_and_value(monkeypatch):
    monkeypatch.setenv("METIS_SECURE_PROXY_SSL_HEADER", "X-Forwarded-Proto: https")
    assert envheader("METIS_SECURE_PROXY_SSL_HEADER") == ("HTTP_X_FORWARDED_PROTO", "https")
    monkeypatch.setenv("METIS_SECURE_PROXY_SSL_HEADER", "https")
    with pytest.raises(ImproperlyConfigured, match="X-Forwarded-Proto: https"):
        envheader("METIS_SECURE_PROXY_SSL_HEADER")


def test_the_throttled_address_is_the_proxys_client_only_behind_a_proxy(rf, settings):
    request = rf.get("/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 10.1.2.3")
    assert client_address(request) == "127.0.0.1"
    settings.METIS_PROXY_COUNT = 1
    assert client_address(request) == "10.1.2.3"  # what nginx saw, not what the client wrote


@pytest.fixture
def unreachable_provider(settings) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.METIS_OIDC_ISSUER = f"http://127.0.0.1:{port}"
    settings.METIS_OIDC_CLIENT_ID = "metis"
    settings.METIS_OIDC_CLIENT_SECRET = "secret"
    settings.METIS_OIDC_NAME = "Okta"


def test_an_unreachable_provider_is_a_clear_message_not_an_error(client, unreachable_provider):
    response = client.get("/login/oidc/")
    assert response.status_code == 403
    assert "Okta cannot be reached right now" in response.content.decode()


def test_a_callback_that_was_never_started_is_refused_clearly(client, unreachable_provider):
    response = client.get("/login/oidc/callback/?code=forged&state=forged")
    assert response.status_code == 403
    assert "Sign-in with Okta did not complete" in response.content.decode()
    assert client.get("/dashboard/").status_code == 302
