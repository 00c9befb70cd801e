"""The gateway handler's headers: made once, as Django's request.headers would have them."""

from __future__ import annotations

from django.core.handlers.asgi import ASGIRequest

from gateway.handler import headers_of

SCOPE = {
    "type": "http",
    "method": "POST",
    "path": "/v1/messages",
    "query_string": b"",
    "headers": [
        (b"Content-Type", b"application/json"),
        (b"x-api-key", b"gw_token"),
        (b"anthropic-beta", b"prompt-caching-2024-07-31"),
        (b"anthropic-beta", b"files-api-2025-04-14"),
        (b"x-caf\xe9", b"cr\xe8me"),  # latin-1, as HTTP/1.1 allows
    ],
}


def test_headers_are_those_django_would_parse_from_the_request():
    ours = headers_of(SCOPE)
    django = ASGIRequest(SCOPE, body_file=None).headers
    assert {name.lower(): value for name, value in django.items()} == ours


def test_a_repeated_header_keeps_every_value_in_order():
    assert headers_of(SCOPE)["anthropic-beta"] == ("prompt-caching-2024-07-31,files-api-2025-04-14")
    assert headers_of(SCOPE)["content-type"] == "application/json"
