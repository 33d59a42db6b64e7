"""Trace context from request headers, for log correlation. Pure.

``traceparent`` (W3C) wins over ``X-Cloud-Trace-Context`` (Google's legacy header), as on Cloud Run.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
# ASCII digits only (\d would take "²" and other Unicode digits, which int() refuses).
_CLOUD_TRACE = re.compile(r"^([0-9a-f]{32})(?:/([0-9]+))?(?:;o=([01]))?$")
MAX_SPAN_DIGITS = 20  # a span id is an unsigned 64-bit integer


@dataclass(frozen=True, slots=True)
class TraceContext:
    trace_id: str
    span_id: str | None
    sampled: bool

    def traceparent(self) -> str:
        """This context as a W3C ``traceparent`` value (to forward downstream)."""
        span = self.span_id or "0000000000000001"
        return f"00-{self.trace_id}-{span}-{'01' if self.sampled else '00'}"

    def log_trace(self, project_id: str) -> str:
        """The ``logging.googleapis.com/trace`` value Cloud Logging correlates on."""
        return f"projects/{project_id}/traces/{self.trace_id}"


def new_trace(sampled: bool = False) -> TraceContext:
    """A fresh trace for a request that arrived without one (so ingest and worker lines of the
    same webhook still correlate)."""
    # Trace ids need to be unique, not secret: no system call per request.
    return TraceContext(
        f"{random.getrandbits(128):032x}", f"{random.getrandbits(64):016x}", sampled
    )


def parse_trace(headers: Mapping[str, str]) -> TraceContext | None:
    """The request's trace context, or None when it carries none (or a malformed one)."""
    traceparent = headers.get("traceparent", "").strip().lower()
    if match := _TRACEPARENT.match(traceparent):
        trace_id, span_id, flags = match.groups()
        if trace_id != "0" * 32 and span_id != "0" * 16:
            return TraceContext(trace_id, span_id, bool(int(flags, 16) & 1))
    cloud = headers.get("x-cloud-trace-context", "").strip().lower()
    if match := _CLOUD_TRACE.match(cloud):
        trace_id, span_decimal, sampled = match.groups()
        span_id = None
        if span_decimal and len(span_decimal) <= MAX_SPAN_DIGITS and int(span_decimal) != 0:
            span_id = f"{int(span_decimal):016x}"
            if len(span_id) > 16:
                span_id = None
        return TraceContext(trace_id, span_id, sampled == "1")
    return None
