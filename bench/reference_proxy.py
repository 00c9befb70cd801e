"""The bare pass-through proxy Metis is measured against (bench/gateway_bench.py).

    uv run python bench/reference_proxy.py --port 8100 --upstream http://127.0.0.1:8080

The same server stack as `metis gateway` (uvicorn with httptools and uvloop) and the same
upstream client (one pooled aiohttp session), and nothing else: no auth, no routing, no
accounting. The request goes upstream as it came, the answer comes back chunk by chunk as
it arrives. What Metis costs beyond this is the price of being a gateway.
"""

from __future__ import annotations

import argparse

import aiohttp
import uvicorn

HOP_BY_HOP = frozenset(
    ("connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding",
     "host", "te", "trailer", "upgrade", "date", "server")
)  # fmt: skip


class ReferenceProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            return await self.lifespan(receive, send)
        if self.session is None:
            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0), skip_auto_headers=("User-Agent",)
            )
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]
                   if k.decode() not in HOP_BY_HOP and k != b"accept-encoding"}  # fmt: skip
        url = self.upstream + scope["path"]
        if scope["query_string"]:
            url += "?" + scope["query_string"].decode()
        async with self.session.request(scope["method"], url, headers=headers, data=body) as up:
            relayed = [(k.encode(), v.encode()) for k, v in up.headers.items()
                       if k.lower() not in HOP_BY_HOP]  # fmt: skip
            await send({"type": "http.response.start", "status": up.status, "headers": relayed})
            async for chunk in up.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def lifespan(self, receive, send) -> None:
        await receive()  # startup
        await send({"type": "lifespan.startup.complete"})
        await receive()  # shutdown
        if self.session is not None:
            await self.session.close()
        await send({"type": "lifespan.shutdown.complete"})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    uvicorn.run(ReferenceProxy(args.upstream), host="127.0.0.1", port=args.port,
                http="httptools", loop="uvloop", access_log=False, log_level="warning")  # fmt: skip


if __name__ == "__main__":
    main()
