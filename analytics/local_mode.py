"""Local mode's rule: which connections count as the developer on their own machine.

`metis serve` on loopback answers analytics and the dashboard without a login, but only
to a connection that (all of these; anything unknown refuses):

- speaks HTTP/1.1 or later: nginx's default `proxy_pass` speaks HTTP/1.0;
- carries no proxy header (Forwarded, X-Forwarded-*, X-Real-IP, Via);
- comes from a loopback TCP socket owned by the same OS user as Metis, read from the
  kernel's socket table (/proc/net/tcp, tcp6). Proxies run as their own user (www-data,
  nobody, caddy), so even a proxy configured to send none of the above is refused.

Where the socket table cannot be read (no /proc, as on macOS) nothing is local: sign in,
or use a gateway token. Decided once per request by the ASGI entry point of `metis serve`
(metis_site/asgi.py); the gateway process never pays for it.
"""

from __future__ import annotations

import os
import struct
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path
from typing import Any

Address = IPv4Address | IPv6Address
PROXY_HEADERS = frozenset(
    {b"forwarded", b"x-forwarded-for", b"x-forwarded-host", b"x-forwarded-proto",
     b"x-forwarded-port", b"x-forwarded-prefix", b"x-forwarded-server", b"x-real-ip",
     b"via"}
)  # fmt: skip
SOCKET_TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))


def is_local(scope: dict[str, Any]) -> bool:
    """Whether this ASGI HTTP connection is the developer's own (the module's rule)."""
    if scope.get("http_version") not in ("1.1", "2", "3"):
        return False
    if any(name.lower() in PROXY_HEADERS for name, _ in scope.get("headers", ())):
        return False
    client, server = scope.get("client"), scope.get("server")
    if not client or not server:
        return False
    try:
        peer = (plain(ip_address(client[0])), int(client[1]))
        here = (plain(ip_address(server[0])), int(server[1]))
    except (ValueError, TypeError):
        return False
    if not peer[0].is_loopback:
        return False
    return socket_owner(peer, here) == os.geteuid()


def socket_owner(local: tuple[Address, int], remote: tuple[Address, int]) -> int | None:
    """The uid that owns the TCP socket at `local` connected to `remote`, or None."""
    for table in SOCKET_TABLES:
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 7 and endpoint(fields[1]) == local and endpoint(fields[2]) == remote:
                return int(fields[7])
    return None


def endpoint(text: str) -> tuple[Address, int] | None:
    """`0100007F:1F90` → (127.0.0.1, 8080). The kernel prints each 32-bit word of the
    address as a number in host byte order; packing it back natively gives the bytes."""
    address, _, port = text.partition(":")
    try:
        words = [int(address[i : i + 8], 16) for i in range(0, len(address), 8)]
        raw = struct.pack(f"={len(words)}I", *words)
        return plain(ip_address(raw)), int(port, 16)
    except (ValueError, struct.error):
        return None


def plain(address: Address) -> Address:
    """An IPv4 client of a dual-stack socket appears as ::ffff:a.b.c.d; compare it as IPv4."""
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
