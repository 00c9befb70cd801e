"""One access-log line per gateway call, on stderr (METIS_ACCESS_LOG).

`text` (the default) is one `key=value` line a person can read and grep; `json` is one
object per line for log shippers; `off` writes nothing. A line names the call (request
id, key id), what it asked for and got (model, status, tokens, cost, latency), never a
token, a provider key or the prompt. Each line is one write() on stderr, so lines from
several workers sharing the stream do not interleave; it keeps the GIL, as the journal's
writes do (gateway/journal.py says why).
"""

from __future__ import annotations

import os
import sys
import time
from functools import lru_cache
from typing import TYPE_CHECKING

import orjson
from django.conf import settings

from gateway.journal import write_holding_gil

if TYPE_CHECKING:
    from gateway.calls import Call


def write(call: Call) -> None:
    mode = settings.METIS_ACCESS_LOG
    if mode == "off":
        return
    fields = fields_of(call)
    if mode == "json":
        if fields["cost_usd"] is not None:  # a JSON number, exact as the events have it
            fields["cost_usd"] = orjson.Fragment(fields["cost_usd"])
        line = orjson.dumps(fields).decode() + "\n"
    else:
        line = " ".join([f"{name}={text(value)}" for name, value in fields.items()]) + "\n"
    if sys.stderr is sys.__stderr__:  # the process's own: one write() that keeps the GIL
        write_holding_gil(sys.__stderr__.fileno(), line.encode())
    else:  # replaced (a test's capture, say)
        sys.stderr.write(line)


def fields_of(call: Call) -> dict:
    usage, route = call.usage, call.route
    cost = call.cost_usd
    return {
        "time": utc_second(int(time.time())),
        "event": "gateway.call",
        "request_id": call.request_id,
        "key_id": call.caller.key.id,
        "user": call.caller.user,
        "shape": call.inbound_shape.value,
        "provider": route.upstream.name,
        "model": route.model,
        "stream": call.stream,
        "status": call.status,
        "error": call.error_class,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "cost_usd": format(cost, "f") if cost is not None else None,
        "latency_ms": call.latency_ms,
        "ttft_ms": call.ttft_ms,
        "pid": os.getpid(),  # which worker of `metis gateway --workers N`
    }


@lru_cache(maxsize=1)
def utc_second(epoch_second: int) -> str:
    """The line's time, formatted once per second rather than once per call."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_second)) + "Z"


def text(value: object) -> str:
    if value is None:
        return "-"
    if value is True or value is False:
        return "true" if value else "false"
    if not isinstance(value, str):
        return str(value)
    # Quoted (JSON string rules) unless plain, so a client's user label or model name can
    # never forge a field or a second line. str methods, not a regex: runs per field.
    if value and value.isprintable() and not ('"' in value or " " in value or "=" in value):
        return value
    return orjson.dumps(value).decode()
