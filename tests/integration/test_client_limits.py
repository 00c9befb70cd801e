"""Oversized and slow clients, against `metis gateway` and `metis serve` as real processes:
auth before the body, the body limit, and the header and body deadlines (slowloris)."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator

import anthropic
import orjson
import pytest

from tests.integration.processes import (
    Server,
    closed_by_server,
    connect,
    issue_token,
    response_of,
    running,
)

LIMIT = 1_000_000
SLOW = {"METIS_CLIENT_HEADER_TIMEOUT": "1", "METIS_CLIENT_BODY_TIMEOUT": "1"}
HELLO = [{"role": "user", "content": "Say hello"}]


@pytest.fixture(scope="module")
def mock() -> Iterator[Server]:
    # Tokens 0.2 s apart: a stream lasts several seconds, past both client timeouts.
    with running("mock-provider", "/_mock/requests", "--token-delay", "0.3") as server:
        yield server


@pytest.fixture(scope="module")
def gateway(mock) -> Iterator[Server]:
    with running("gateway", "/healthz", METIS_MAX_BODY_BYTES=str(LIMIT), **SLOW,
                 METIS_ANTHROPIC_BASE_URL=mock.url, METIS_ANTHROPIC_API_KEY="sk-ant-test",
                 METIS_OPENAI_BASE_URL=mock.url, METIS_OPENAI_API_KEY="sk-oai-test",
                 ) as server:  # fmt: skip
        yield server


@pytest.fixture(scope="module")
def token(gateway) -> str:
    return issue_token(gateway)


@pytest.fixture(scope="module")
def serve() -> Iterator[Server]:
    with running("serve", "/health", **SLOW) as server:
        yield server


def request_head(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def upload(server: Server, head: bytes, total: int) -> tuple[int, tuple[int, dict, bytes]]:
    """Send `head`, then up to `total` body bytes until the server answers: (bytes sent, answer)."""
    sock = connect(server)
    sock.sendall(head)
    block, sent = b"x" * 65536, 0
    sock.setblocking(False)
    while sent < total:
        readable, _, _ = select.select([sock], [sock], [], 30)
        if readable:
            break
        try:
            sent += sock.send(block[: total - sent])
        except BlockingIOError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            break
    sock.setblocking(True)
    with sock:
        return sent, response_of(sock)


def error_of(path: str, body: bytes) -> dict:
    parsed = orjson.loads(body)
    if path.startswith(("/v1/messages", "/messages")):
        assert parsed["type"] == "error", parsed
    else:
        assert set(parsed) == {"error"}, parsed
    assert parsed["error"]["message"], parsed
    return parsed["error"]


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/chat/completions", "/messages"])
def test_a_big_body_without_a_token_gets_401_before_the_server_reads_it(gateway, path):
    head = request_head(path, {"Content-Type": "application/json",
                               "Content-Length": str(300_000_000)})  # fmt: skip
    sent, (status, headers, body) = upload(gateway, head, 300_000_000)
    assert status == 401
    error_of(path, body)
    # What loopback's socket buffers take before anyone reads; the whole 300 MB before.
    assert sent < 32_000_000, f"the client sent {sent:,} bytes before the 401"
    assert headers.get("connection") == "close"


def test_a_chunked_body_without_a_token_gets_401_before_the_server_reads_it(gateway):
    head = request_head("/v1/messages", {"Transfer-Encoding": "chunked"})
    # One chunk of 256 MiB declared, its bytes sent until the server answers.
    sent, (status, _, body) = upload(gateway, head + b"10000000\r\n", 0x10000000)
    assert status == 401
    assert sent < 32_000_000
    error_of("/v1/messages", body)


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/chat/completions"])
def test_a_declared_length_over_the_limit_gets_413_without_reading(gateway, token, path):
    head = request_head(path, {"x-api-key": token, "Content-Length": str(300_000_000)})
    sent, (status, _, body) = upload(gateway, head, 300_000_000)
    assert status == 413, body
    error = error_of(path, body)
    assert f"{LIMIT:,}" in error["message"]
    assert error.get("type") == "request_too_large" or error.get("code") == "request_too_large"
    assert sent < 32_000_000


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/chat/completions"])
def test_a_chunked_body_over_the_limit_gets_413_once_it_crosses_it(gateway, token, path):
    head = request_head(path, {"x-api-key": token, "Transfer-Encoding": "chunked"})
    # One chunk of 256 MiB declared, far past the limit.
    sent, (status, _, body) = upload(gateway, head + b"10000000\r\n", 0x10000000)
    assert status == 413, body
    error_of(path, body)
    assert sent < 32_000_000


def trickle(sock: socket.socket, data: bytes, every: float, until: float) -> bool:
    """Send `data` a byte at a time; True if the server closed the connection meanwhile."""
    deadline = time.monotonic() + until
    for byte in data:
        if time.monotonic() > deadline:
            return False
        try:
            sock.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            return True
        if closed_by_server(sock, every):
            return True
    return False


@pytest.mark.parametrize("server_name", ["gateway", "serve"])
def test_headers_that_trickle_in_get_the_connection_closed(request, server_name):
    server = request.getfixturevalue(server_name)
    with connect(server) as sock:
        head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Slow: " + b"a" * 200
        # The bound is 1 s; 20 s is only where the test gives up.
        assert trickle(sock, head, every=0.2, until=20), "still open after 20 s of trickling"


@pytest.mark.parametrize("server_name", ["gateway", "serve"])
def test_a_connection_that_sends_nothing_is_closed(request, server_name):
    server = request.getfixturevalue(server_name)
    with connect(server) as sock:
        assert closed_by_server(sock, 20)


def test_a_body_that_trickles_in_gets_408_in_the_callers_shape(gateway, token):
    headers = {"Authorization": f"Bearer {token}", "Content-Length": "500"}
    with connect(gateway) as sock:
        sock.sendall(request_head("/v1/chat/completions", headers) + b'{"model": ')
        status, _, body = response_of(sock, timeout=20)
        assert status == 408
        assert error_of("/v1/chat/completions", body)["code"] == "request_timeout"
        assert closed_by_server(sock, 20)


def test_a_body_that_trickles_into_serve_gets_408_as_json(serve):
    with connect(serve) as sock:
        sock.sendall(request_head("/analytics/cost", {"Content-Length": "500"}) + b"{")
        status, _, body = response_of(sock, timeout=20)
        assert status == 408
        assert "METIS_CLIENT_BODY_TIMEOUT" in orjson.loads(body)["detail"]


def test_a_body_over_serves_limit_gets_413_as_json_without_reading(serve):
    head = request_head("/analytics/cost", {"Content-Length": str(300_000_000)})
    sent, (status, _, body) = upload(serve, head, 300_000_000)
    assert status == 413
    assert orjson.loads(body)["detail"]
    assert sent < 32_000_000


def test_a_host_serve_refuses_gets_a_json_400_for_the_api(serve):
    with connect(serve) as sock:
        sock.sendall(b"GET /analytics/cost HTTP/1.1\r\nHost: evil.example\r\n\r\n")
        status, headers, body = response_of(sock)
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert "evil.example" in orjson.loads(body)["detail"]


def test_a_slow_stream_response_outlives_both_client_timeouts(gateway, token):
    client = anthropic.Anthropic(base_url=gateway.url, api_key=token, max_retries=0)
    started = time.monotonic()
    with client.messages.stream(model="haiku", max_tokens=64, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert final.stop_reason == "end_turn" and text
    assert time.monotonic() - started > 2, "the stream was not slow: the test proves nothing"
