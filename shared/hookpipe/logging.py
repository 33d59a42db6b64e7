"""Structured logs in Cloud Logging's JSON format on stdout, one canonical line per request.

google-cloud-logging's ``StructuredLogHandler`` is constructed directly: it writes JSON lines to
stdout and makes no network call (``setup_logging()`` off Google Cloud would pick the API handler
and probe the metadata server).
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Mapping
from typing import Any

from google.cloud.logging_v2.handlers import StructuredLogHandler

from hookpipe.tracing import TraceContext

_configured = False


def configure_logging(project_id: str, level: str = "INFO", stream: Any = None) -> None:
    """Send every log record through one structured handler on stdout (idempotent)."""
    global _configured
    root = logging.getLogger()
    if _configured:
        root.setLevel(level)
        return
    handler = StructuredLogHandler(project_id=project_id, stream=stream or sys.stdout)
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The emulators' and clients' chatter is not ours to print at INFO.
    for noisy in ("google", "urllib3", "grpc", "psycopg", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _configured = True


def log_event(
    logger: logging.Logger,
    level: int,
    message: str,
    *,
    project_id: str,
    trace: TraceContext | None = None,
    http_request: Mapping[str, Any] | None = None,
    fields: Mapping[str, Any] | None = None,
    exc: BaseException | None = None,
) -> None:
    """Write one structured log entry.

    ``fields`` become top-level JSON fields. With ``exc`` the stack trace is appended to the
    message, which is where Error Reporting looks for it (the structured handler drops
    ``exc_info``) and the entry is typed as a reported error event.
    """
    json_fields = dict(fields or {})
    if exc is not None:
        stack = "".join(traceback.format_exception(exc))
        message = f"{message}\n{stack}"
        json_fields["@type"] = (
            "type.googleapis.com/google.devtools.clouderrorreporting.v1beta1.ReportedErrorEvent"
        )
    extra: dict[str, Any] = {"json_fields": json_fields}
    if trace is not None:
        extra["trace"] = trace.log_trace(project_id)
        extra["span_id"] = trace.span_id
        extra["trace_sampled"] = trace.sampled
    if http_request is not None:
        extra["http_request"] = dict(http_request)
    logger.log(level, message, extra=extra)
