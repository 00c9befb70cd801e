"""Typed reads of a client's JSON for the translating shapes: each wrong type is a 400
naming the field by its path (`messages[2].content`), never a 500."""

from __future__ import annotations

import re
from typing import Any

import orjson

from gateway.errors import bad_request
from gateway.shapes import internal

DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+);base64,(.*)", re.S)


def as_list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise bad_request(f"{where} must be a list", param=where)
    return value


def listed(value: Any) -> list[Any]:
    """A provider's list, or none: what a misbehaving server sends must not break the relay."""
    return value if isinstance(value, list) else []


def as_dict(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad_request(f"{where} must be an object", param=where)
    return value


def as_str(value: Any, where: str, *, default: str | None = None) -> str:
    if value is None and default is not None:
        return default
    if not isinstance(value, str):
        raise bad_request(f"{where} must be a string", param=where)
    return value


def as_number(value: Any, where: str) -> float | int:
    if type(value) not in (int, float):
        raise bad_request(f"{where} must be a number", param=where)
    return value


def as_bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise bad_request(f"{where} must be true or false", param=where)
    return value


def positive_int(value: Any, where: str) -> int:
    if type(value) is not int or value < 1:
        raise bad_request(f"{where} must be a positive integer", param=where)
    return value


def arguments(value: Any, where: str) -> str:
    """Tool-call arguments as JSON text of an object (a 400 when they are not JSON)."""
    text = as_str(value, where, default="{}") or "{}"
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise bad_request(f"{where} is not JSON", param=where) from None
    if not isinstance(parsed, dict):
        raise bad_request(f"{where} must be a JSON object", param=where)
    return text


def arguments_object(text: str) -> dict[str, Any]:
    """Arguments a provider generated, as an object; what is not an object reads as {}."""
    try:
        parsed = orjson.loads(text or "{}")
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def image_from_url(url: str) -> internal.Image | None:
    """A data: URL or http(s) URL as an image; None for anything else."""
    if match := DATA_URL.fullmatch(url):
        return internal.Image(media_type=match[1], data=match[2])
    if url.startswith(("https://", "http://")):
        return internal.Image(url=url)
    return None


def image_url(image: internal.Image) -> str:
    if image.url is not None:
        return image.url
    return f"data:{image.media_type};base64,{image.data}"
