"""Local mode's rule (analytics/local_mode.py), against a real `metis serve`: the
developer's own curl gets analytics without a login; HTTP/1.0, proxy headers, another
OS user's socket and the real nginx in its default proxy_pass configuration do not."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from ipaddress import ip_address

import httpx
import pytest

from analytics.local_mode import is_local, socket_owner
from tests.integration.nginx import require_nginx, start_nginx
from tests.integration.serve_process import Serve, free_port, start_serve


@pytest.fixture(scope="module")
def serve(tmp_path_factory) -> Iterator[Serve]:
    server = start_serve(tmp_path_factory.mktemp("local") / "home", "local")
    try:
        server.wait_until_up(time.monotonic() + 120)
        yield server
    finally:
        server.stop()


def raw_status(port: int, request: bytes) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        return int(connection.recv(200).split(b" ", 2)[1])


def test_the_developers_own_curl_gets_local_mode(serve):
    assert httpx.get(f"{serve.url}/analytics/cost").status_code == 200
    request = f"GET /analytics/cost HTTP/1.1\r\nHost: 127.0.0.1:{serve.port}\r\n\r\n"
    assert raw_status(serve.port, request.encode()) == 200


def test_an_http_1_0_request_does_not(serve):
    request = f"GET /analytics/cost HTTP/1.0\r\nHost: 127.0.0.1:{serve.port}\r\n\r\n"
    assert raw_status(serve.port, request.encode()) == 401


@pytest.mark.parametrize(
    "header",
    ["Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-IP", "Via"],
)
def test_a_request_with_a_proxy_header_does_not(serve, header):
    response = httpx.get(f"{serve.url}/analytics/cost", headers={header: "127.0.0.1"})
    assert response.status_code == 401


def status_as_user(uid: int, port: int) -> int:
    """A plain HTTP/1.1 request from a socket owned by `uid`: a forked child drops to it
    before it connects (no interpreter to exec, so nothing must be readable by `uid`)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: only syscalls, then _exit
        try:
            os.setgid(uid)
            os.setuid(uid)
            request = f"GET /analytics/cost HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
            os.write(write, str(raw_status(port, request.encode())).encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as answer:
        return int(answer.read() or 0)


def test_a_connection_from_another_os_user_does_not(serve):
    if os.geteuid() != 0:
        pytest.skip("needs root to connect as another user (CI runs as root)")
    # No proxy header, HTTP/1.1: only the socket's owner differs (65534: nobody).
    assert status_as_user(65534, serve.port) == 401
    assert status_as_user(os.geteuid(), serve.port) == 200


SITE = """
    server {{
        listen 127.0.0.1:{port};
        location / {{ proxy_pass http://127.0.0.1:{upstream}; {extra}}}
    }}
"""


@pytest.fixture(params=["default", "http/1.1"])
def nginx(request, serve, tmp_path) -> Iterator[str]:
    """The real nginx (Debian's package), as its default site proxies: just proxy_pass;
    and once speaking HTTP/1.1, where only the socket's owner (its worker) gives it away."""
    require_nginx()
    extra = ""
    if request.param == "http/1.1":
        if os.geteuid() != 0:
            pytest.skip("nginx workers run as another user only when started as root (CI is)")
        extra = "proxy_http_version 1.1; "
    port = free_port()
    process = start_nginx(tmp_path, SITE.format(port=port, upstream=serve.port, extra=extra))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/health", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"nginx did not start: {process.stderr.read()}") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def test_nginx_in_front_never_gets_local_mode(serve, nginx):
    assert httpx.get(f"{nginx}/analytics/cost").status_code == 401
    dashboard = httpx.get(f"{nginx}/dashboard/")
    assert dashboard.status_code == 302
    assert dashboard.headers["location"] == "/login/?next=/dashboard/"
    assert httpx.get(f"{nginx}/login/").status_code == 200  # the proxy itself works
    assert httpx.get(f"{serve.url}/analytics/cost").status_code == 200  # direct: still local


@pytest.mark.parametrize(
    ("family", "loopback"), [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]
)
def test_the_socket_table_names_the_owner_of_a_live_connection(family, loopback):
    if family == socket.AF_INET6 and not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    with socket.socket(family) as listener:
        listener.bind((loopback, 0))
        listener.listen()
        with socket.create_connection(listener.getsockname()[:2]) as client:
            here = (ip_address(loopback), listener.getsockname()[1])
            peer = (ip_address(loopback), client.getsockname()[1])
            assert socket_owner(peer, here) == os.geteuid()
            assert socket_owner(here, peer) is not None  # the accepted end, ours too
    assert socket_owner(peer, here) in (None, 0)  # gone, or in TIME_WAIT (owner 0)


def test_a_connection_that_cannot_be_identified_is_not_local():
    scope = {"http_version": "1.1", "headers": [], "client": ("127.0.0.1", 1), "server": None}
    assert not is_local(scope)
    assert not is_local({**scope, "server": ("127.0.0.1", 1)})  # no such socket
    assert not is_local({**scope, "client": None, "server": ("127.0.0.1", 1)})
    assert not is_local({**scope, "client": ("10.0.0.5", 1), "server": ("127.0.0.1", 1)})
