"""Fault injection: parse `x-mock-fault` specs and count how often each has fired.

A spec is comma-separated parts with an optional repeat limit, e.g. `429`, `slow:1.5,cut:3`,
`500*2`, `zero-output` (a completion whose usage reports 0 output tokens). It comes from the
`x-mock-fault` header (id in `x-mock-fault-id`) or, for clients that cannot set headers
(Claude Code), from `[[fault:SPEC id=ID]]` in the last user message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

DIRECTIVE = re.compile(r"\[\[fault:([^\]\s]+)(?:\s+id=([^\]\s]+))?\s*\]\]")


@dataclass(frozen=True, slots=True)
class Fault:
    status: int | None = None  # answer with this HTTP error instead of a completion
    slow: float = 0.0  # seconds to wait before the first byte
    cut: int | None = None  # close the connection after this many stream events
    hang: bool = False  # send a little, then stall until the client gives up
    zero_output: bool = False  # a normal completion whose usage says output_tokens: 0
    linger: float = 0.0  # streams: seconds between the last event and the end of the body


NO_FAULT = Fault()


def parse(spec: str) -> tuple[Fault, int | None]:
    """Return the fault and its repeat limit (None: fire every time); ValueError if malformed."""
    parts, _, times = spec.partition("*")
    status, slow, cut, hang, zero_output, linger = None, 0.0, None, False, False, 0.0
    for part in parts.split(","):
        name, _, arg = part.strip().partition(":")
        if name.isdigit() and len(name) == 3:
            status = int(name)
        elif name == "slow":
            slow = float(arg)
        elif name == "cut":
            cut = int(arg)
        elif name == "hang":
            hang = True
        elif name == "zero-output":
            zero_output = True
        elif name == "linger":
            linger = float(arg)
        else:
            raise ValueError(
                f"unknown mock fault {part!r}: use 429, 500, slow:S, cut:N, hang, zero-output, "
                "linger:S"
            )
    fault = Fault(status, slow, cut, hang, zero_output, linger)
    return fault, (int(times) if times else None)


class FaultCounter:
    """Counts firings per (fault id, spec) so `429*2` fails twice and then lets calls through."""

    def __init__(self) -> None:
        self._fired: dict[tuple[str, str], int] = {}

    def fire(self, spec: str, fault_id: str, limit: int | None) -> bool:
        if limit is None:
            return True
        if len(self._fired) > 10_000:  # a long-running demo must not grow without bound
            self._fired.clear()
        key = (fault_id, spec)
        fired = self._fired.get(key, 0) + 1
        self._fired[key] = fired
        return fired <= limit

    def clear(self) -> None:
        self._fired.clear()


def requested(headers: Mapping[str, str], text: str, counter: FaultCounter) -> Fault:
    """The fault this request asks for, or NO_FAULT once a limited fault has been used up."""
    spec = headers.get("x-mock-fault", "")
    fault_id = headers.get("x-mock-fault-id", "")
    if not spec and "[[fault:" in text and (match := DIRECTIVE.search(text)):
        spec, fault_id = match[1], match[2] or ""
    if not spec:
        return NO_FAULT
    fault, limit = parse(spec)
    return fault if counter.fire(spec, fault_id, limit) else NO_FAULT
