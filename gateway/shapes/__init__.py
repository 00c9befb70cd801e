"""The wire shapes clients speak, in one explicit registry (no plugin discovery).

Adding a shape: one module (or package) here with the `WireShape` and `Translating`
methods (gateway/shapes/base.py), one line in `SHAPES`, and its endpoint in
gateway/api.py. Cross-shape calls then work to and from every other shape.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.http import HttpResponse

from gateway.errors import GatewayError
from gateway.shapes import anthropic
from gateway.shapes.anthropic import AnthropicMessages
from gateway.shapes.base import ErrorInfo, Shape, TranslatingShape, WireShape, read_body
from gateway.shapes.openai_chat import OpenAIChat
from gateway.shapes.openai_responses import OpenAIResponses

__all__ = [
    "BODY_ENDPOINTS",
    "PATH_ALIASES",
    "SHAPES",
    "ErrorInfo",
    "Shape",
    "TranslatingShape",
    "WireShape",
    "read_body",
    "render",
    "shape_for",
]

SHAPES: dict[Shape, TranslatingShape] = {
    Shape.ANTHROPIC: AnthropicMessages(),
    Shape.OPENAI: OpenAIChat(),
    Shape.RESPONSES: OpenAIResponses(),
}
# The endpoints that take a body: the handler authenticates them from the headers before it
# reads a byte of it (gateway/handler.py); every other request's body is never read.
BODY_ENDPOINTS = {path: wire.shape for wire in SHAPES.values() for path in wire.paths}
# Other paths that mean one of those; the handler serves them as the path they mean.
PATH_ALIASES = {**anthropic.PATH_ALIASES}
# Paths that name no shape (/v1/models, unknown ones) answer in the shape whose SDKs
# alone send a telltale header, else in OpenAI's, the dialect most clients speak.
DEFAULT = Shape.OPENAI


def shape_for(path: str, headers: Mapping[str, str]) -> Shape:
    """The shape to answer in: the path's, else the headers'."""
    for wire in SHAPES.values():
        if path.startswith(wire.path_prefix):
            return wire.shape
    for wire in SHAPES.values():
        if wire.sdk_header and wire.sdk_header in headers:
            return wire.shape
    return DEFAULT


def render(error: GatewayError, shape: Shape) -> HttpResponse:
    """A gateway error in the caller's shape."""
    info = ErrorInfo(error.status, error.message, error.param, error.code, error.openai_type)
    return error.response(SHAPES[shape].error_body(info))
