"""OpenAI's embeddings endpoint (https://platform.openai.com/docs/api-reference/embeddings),
answered deterministically: the same input always gets the same unit vector.

As OpenAI does: `input` is a string, a list of strings, a list of token ids or a list of
such lists (at most 2048 items, none empty); `encoding_format` "base64" returns each
vector as little-endian float32 bytes (the openai SDK asks for it by default and decodes
it); `dimensions` shortens a text-embedding-3 vector; usage has `prompt_tokens` and
`total_tokens` only. Tokens are counted as ~4 characters of text each, or one per id.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from typing import Any

import orjson
from aiohttp import web

from mock_provider.ledger import api_key_of
from mock_provider.openai import _headers, error, refused
from mock_provider.wire import Exchange, apply_fault, recorded, send_body

DIMENSIONS = {"text-embedding-3-large": 3072}  # otherwise 1536, as -3-small and ada-002
MAX_INPUTS = 2048


@recorded
async def embeddings(ex: Exchange) -> web.StreamResponse:
    if problem := refused(ex):
        return problem
    body = ex.body
    inputs = inputs_of(body.get("input"))
    if inputs is None:
        return error(400, "'$.input' is invalid. Please check the API reference.")
    largest = DIMENSIONS.get(body["model"], 1536)
    size = body.get("dimensions", largest)
    if type(size) is not int or not 1 <= size <= largest:
        return error(400, f"'dimensions' must be an integer from 1 to {largest}")
    if failed := await apply_fault(ex, " ".join(map(str, inputs)), error):
        return failed
    as_base64 = body.get("encoding_format") == "base64"
    data = [
        {"object": "embedding", "index": i, "embedding": vector(item, size, as_base64)}
        for i, item in enumerate(inputs)
    ]
    tokens = sum(tokens_of(item) for item in inputs)
    ex.state.ledger.add("embeddings", "openai", api_key_of(ex.request), body["model"],
                        uncached_input=tokens)  # fmt: skip
    answer = {
        "object": "list",
        "data": data,
        "model": body["model"],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return await send_body(ex, orjson.dumps(answer), _headers())


def inputs_of(value: Any) -> list[str | list[int]] | None:
    """The inputs to embed, one per vector; None when `input` is not one OpenAI takes."""
    if isinstance(value, str):
        items: list[Any] = [value]
    elif isinstance(value, list) and value and all(type(v) is int for v in value):
        items = [value]  # one input given as token ids
    elif isinstance(value, list):
        items = value
    else:
        return None
    if not items or len(items) > MAX_INPUTS:
        return None
    for item in items:
        text = isinstance(item, str) and item
        ids = isinstance(item, list) and item and all(type(t) is int for t in item)
        if not (text or ids):
            return None
    return items


def tokens_of(item: str | list[int]) -> int:
    return len(item) if isinstance(item, list) else max(1, len(item) // 4)


def vector(item: str | list[int], size: int, as_base64: bool) -> list[float] | str:
    seed = orjson.dumps(item)
    raw: list[float] = []
    block = 0
    while len(raw) < size:
        digest = hashlib.blake2b(seed + block.to_bytes(4, "little"), digest_size=64).digest()
        raw.extend(b / 127.5 - 1.0 for b in digest)
        block += 1
    raw = raw[:size]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    unit = [x / norm for x in raw]
    if as_base64:
        return base64.b64encode(struct.pack(f"<{size}f", *unit)).decode()
    return unit
