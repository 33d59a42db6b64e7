"""Structured logs in Cloud Logging's JSON format on stdout, one canonical line per request.

Each record becomes the JSON line google-cloud-logging's ``StructuredLogHandler`` writes for it
(severity, message and the record's ``json_fields`` at the top level,
``logging.googleapis.com/trace``, ``spanId``, ``trace_sampled``, ``labels``, ``sourceLocation``,
``httpRequest``), but built as one dict and encoded once: the library's handler runs a filter,
five ``json.dumps`` and a %-template per record, and importing it costs ingest ~0.2 s of
start-up (docs/benchmarks.md, "Ingest"). tests/unit/test_logging.py proves, over generated
records, that every line parses to exactly what the handler's does. Not reproduced: the
handler's guess of trace and request from a Flask/Django request context (our services pass
both explicitly) and its one-off "instrumentation" line.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import IO, Any

from hookpipe.tracing import TraceContext

# Fields Cloud Logging reads from the entry itself; a record's own fields may not set them
# (the same set StructuredLogHandler strips from the payload).
RESERVED_FIELDS = frozenset(
    {
        "severity",
        "httpRequest",
        "time",
        "timestamp",
        "timestampSeconds",
        "timestampNanos",
        "logging.googleapis.com/insertId",
        "logging.googleapis.com/labels",
        "logging.googleapis.com/operation",
        "logging.googleapis.com/sourceLocation",
        "logging.googleapis.com/spanId",
        "logging.googleapis.com/trace",
        "logging.googleapis.com/trace_sampled",
    }
)
_FORMATTER = logging.Formatter()
_configured = False


def _payload(record: logging.LogRecord) -> Any:
    """The record's message and fields, as StructuredLogHandler reads them."""
    fields = getattr(record, "json_fields", {})
    if isinstance(record.msg, Mapping):
        return {**record.msg, **fields} if fields and isinstance(fields, Mapping) else record.msg
    message: Any = _FORMATTER.format(record)
    if message[:1] == "{":
        try:
            parsed = json.loads(message)
        except json.JSONDecodeError:
            pass
        else:
            if isinstance(parsed, Mapping):
                message = parsed
    if fields and isinstance(fields, Mapping):
        payload = dict(fields)
        if message != "None":
            payload["message"] = message
        return payload
    return message if message != "None" else None


def _source_location(record: logging.LogRecord) -> Any:
    if hasattr(record, "source_location"):
        return record.source_location
    pairs = (("line", record.lineno), ("file", record.pathname), ("function", record.funcName))
    return {name: value for name, value in pairs if value is not None}


def structured_line(record: logging.LogRecord) -> str:
    """``record`` as one line of Cloud Logging structured JSON."""
    entry: dict[str, Any] = {}
    payload = _payload(record)
    if isinstance(payload, Mapping):
        entry.update((k, v) for k, v in payload.items() if k not in RESERVED_FIELDS)
    elif payload:
        entry["message"] = payload
    labels = {"python_logger": record.name} if record.name else {}
    labels.update(getattr(record, "labels", {}) or {})
    entry["severity"] = record.levelname
    # When it happened, as Cloud Logging's special `time` field: the entry's timestamp is then
    # the record's, not the agent's receive time, and the local stack's log files (which nothing
    # stamps) carry it too for `hookpipe trace`.
    entry["time"] = datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z")
    entry["logging.googleapis.com/labels"] = labels
    entry["logging.googleapis.com/trace"] = getattr(record, "trace", None) or ""
    entry["logging.googleapis.com/spanId"] = getattr(record, "span_id", None) or ""
    entry["logging.googleapis.com/trace_sampled"] = bool(getattr(record, "trace_sampled", False))
    entry["logging.googleapis.com/sourceLocation"] = _source_location(record) or {}
    entry["httpRequest"] = getattr(record, "http_request", None) or {}
    try:
        return json.dumps(entry, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        # A field JSON cannot hold (a tuple key, an object, a cycle) must not cost the whole
        # line: the handler would drop it, and with it the event it reports. Such fields are
        # written as their text instead.
        return json.dumps(_as_json(entry, _MAX_FALLBACK_DEPTH), ensure_ascii=False)


_MAX_FALLBACK_DEPTH = 32


def _as_json(value: Any, depth: int) -> Any:
    """``value`` with every key a string and every leaf a JSON scalar (else its text)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if depth > 0 and isinstance(value, Mapping):
        return {
            k if isinstance(k, str) else str(k): _as_json(v, depth - 1) for k, v in value.items()
        }
    if depth > 0 and isinstance(value, list | tuple):
        return [_as_json(v, depth - 1) for v in value]
    return str(value)


class StructuredLineHandler(logging.Handler):
    """Writes each record as one :func:`structured_line` to a stream (stdout on Cloud Run)."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__()
        self.stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        # Handler.handle() holds the handler's lock around this.
        try:
            self.stream.write(structured_line(record) + "\n")
            self.stream.flush()
        except Exception:
            self.handleError(record)


class SecretFilter(logging.Filter):
    """Replaces each of ``secrets`` in a record's message with ``***``: for what a library logs
    that we do not write ourselves (psycopg_pool echoes libpq's errors)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if not isinstance(record.msg, str):
            return True
        message = record.getMessage()
        if any(secret in message for secret in self.secrets):
            for secret in self.secrets:
                message = message.replace(secret, "***")
            record.msg, record.args = message, None
        return True


def redact(secrets: Iterable[str]) -> None:
    """Never write any of ``secrets`` to the log, whoever logs it (after configure_logging)."""
    secret_filter = SecretFilter(secrets)
    for handler in logging.getLogger().handlers:
        handler.addFilter(secret_filter)


def configure_logging(project_id: str, level: str = "INFO", stream: Any = None) -> None:
    """Send every log record through one structured handler on stdout (idempotent).

    ``project_id`` is kept for the callers' sake: trace ids arrive already qualified
    (``TraceContext.log_trace``)."""
    global _configured
    root = logging.getLogger()
    if _configured:
        root.setLevel(level)
        return
    root.handlers[:] = [StructuredLineHandler(stream or sys.stdout)]
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
    if not logger.isEnabledFor(level):  # nothing is written: build nothing
        return
    json_fields = {name: bounded(value) for name, value in (fields or {}).items()}
    message = bounded(message)
    if exc is not None:
        stack = "".join(traceback.format_exception(exc))
        message = f"{message}\n{bounded(stack, MAX_STACK_CHARS)}"
        json_fields["@type"] = (
            "type.googleapis.com/google.devtools.clouderrorreporting.v1beta1.ReportedErrorEvent"
        )
    extra: dict[str, Any] = {"json_fields": json_fields}
    if trace is not None:
        extra["trace"] = trace.log_trace(project_id)
        extra["span_id"] = trace.span_id
        extra["trace_sampled"] = trace.sampled
    if http_request is not None:
        extra["http_request"] = {name: bounded(value) for name, value in http_request.items()}
    logger.log(level, message, extra=extra)


# Cloud Logging drops an entry over 256 KB, and with it the metric points counted from it (the
# quiet-source alert): every text a sender can influence (a path, a User-Agent, a reason quoting a
# form field) is cut to MAX_FIELD_CHARS, a stack trace to MAX_STACK_CHARS; lists and objects keep
# MAX_ITEMS entries of at most MAX_NESTED_CHARS, and what is nested deeper is written as text.
MAX_FIELD_CHARS = 2048
MAX_STACK_CHARS = 32 * 1024
MAX_ITEMS = 20
MAX_NESTED_CHARS = 256


def bounded(value: Any, limit: int = MAX_FIELD_CHARS, depth: int = 0) -> Any:
    """``value`` cut to the bounds above (an ellipsis says where)."""
    if isinstance(value, str):
        return value if len(value) <= limit else value[: limit - 1] + "…"
    if isinstance(value, list | tuple | dict):
        if depth >= 2:
            return bounded(str(value), MAX_NESTED_CHARS)
        if isinstance(value, dict):
            items = list(value.items())[:MAX_ITEMS]
            return {k: bounded(v, MAX_NESTED_CHARS, depth + 1) for k, v in items}
        kept = [bounded(v, MAX_NESTED_CHARS, depth + 1) for v in value[:MAX_ITEMS]]
        return [*kept, "…"] if len(value) > MAX_ITEMS else kept
    return value


def log_request(
    logger: logging.Logger,
    level: int,
    *,
    event: str,
    method: str,
    path: str,
    status: int,
    outcome: str,
    reason: str | None,
    seconds: float,
    project_id: str,
    revision: str,
    trace: TraceContext | None = None,
    http: Mapping[str, Any] | None = None,
    fields: Mapping[str, Any] | None = None,
    exc: BaseException | None = None,
) -> None:
    """The canonical line of one request, the same shape in both services: the message
    ``"<method> <path> <status> <outcome>"``; ``httpRequest`` with method, path (never the query
    string: it may carry a token), status and latency, plus ``http``; and top-level ``event``,
    ``outcome``, ``reason``, ``latency_ms``, ``revision``, plus ``fields``."""
    log_event(
        logger,
        level,
        f"{method} {path} {status} {outcome}",
        project_id=project_id,
        trace=trace,
        http_request={
            "requestMethod": method,
            "requestUrl": path,
            "status": status,
            "latency": f"{seconds:.6f}s",
            **(http or {}),
        },
        fields={
            "event": event,
            **(fields or {}),
            "outcome": outcome,
            "reason": reason,
            "latency_ms": round(seconds * 1000, 3),
            "revision": revision,
        },
        exc=exc,
    )
