"""hookpipe's structured lines against google-cloud-logging's StructuredLogHandler, the
reference: for every generated record, the two lines parse to the same JSON, field for field."""

from __future__ import annotations

import io
import json
import logging
import sys
from datetime import datetime
from typing import Any

import google.cloud.logging_v2
import pytest
from google.cloud.logging_v2.handlers import StructuredLogHandler
from hookpipe.logging import StructuredLineHandler, log_event
from hookpipe.tracing import TraceContext
from hypothesis import given, settings
from hypothesis import strategies as st

# The reference handler writes a one-off diagnostic line first; it is not part of a record.
google.cloud.logging_v2._instrumentation_emitted = True

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
# The reference pastes trace and span ids into its template unescaped (a quote or a control
# character makes its line invalid JSON): compare on the ids it can write, as ours are.
ids = st.text(alphabet="0123456789abcdefprojects/traces-", min_size=1, max_size=40)
field_names = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        ["message", "severity", "httpRequest", "event", "logging.googleapis.com/trace"]
    ),
)


def _lines(record_factory: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    ours, reference = io.StringIO(), io.StringIO()
    StructuredLineHandler(ours).handle(record_factory())
    StructuredLogHandler(project_id="p", stream=reference).handle(record_factory())
    line = json.loads(ours.getvalue())
    # The one field ours adds: the record's time (the reference leaves it to the agent).
    stamped = datetime.fromisoformat(line.pop("time"))
    assert stamped.tzinfo is not None
    return line, json.loads(reference.getvalue())


@settings(max_examples=400, deadline=None)
@given(
    level=st.sampled_from([logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR]),
    msg=st.one_of(
        st.text(max_size=40),
        st.just("None"),
        st.just(""),
        json_values.map(json.dumps),
        st.dictionaries(field_names, json_values, max_size=4),
    ),
    fields=st.none() | st.dictionaries(field_names, json_values, max_size=5),
    trace=st.none() | ids,
    span=st.none() | ids,
    sampled=st.none() | st.booleans(),
    http=st.none() | st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3),
    labels=st.none() | st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=2),
    name=st.sampled_from(["hookpipe.ingest", "", "google.api_core"]),
    with_exception=st.booleans(),
)
def test_every_record_is_the_same_json_as_the_reference_handler(
    level: int,
    msg: Any,
    fields: dict[str, Any] | None,
    trace: str | None,
    span: str | None,
    sampled: bool | None,
    http: dict[str, str] | None,
    labels: dict[str, str] | None,
    name: str,
    with_exception: bool,
) -> None:
    exc_info = None
    if with_exception:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    extra: dict[str, Any] = {}
    for key, value in (
        ("json_fields", fields),
        ("trace", trace),
        ("span_id", span),
        ("trace_sampled", sampled),
        ("http_request", http),
        ("labels", labels),
    ):
        if value is not None:
            extra[key] = value

    def record() -> logging.LogRecord:
        made = logging.LogRecord(name, level, "/app/x.py", 42, msg, (), exc_info, "fn")
        made.__dict__.update(extra)
        return made

    ours, reference = _lines(record)
    assert ours == reference


def test_the_canonical_request_line_matches_the_reference() -> None:
    trace = TraceContext("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", True)
    captured: list[logging.LogRecord] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            captured.append(record)

    logger = logging.getLogger("hookpipe.test.canonical")
    logger.propagate = False
    logger.handlers[:] = [Capture()]
    logger.setLevel(logging.INFO)
    log_event(
        logger,
        logging.INFO,
        "POST /webhooks/leadprosper 202 accepted",
        project_id="p",
        trace=trace,
        http_request={"requestMethod": "POST", "status": 202, "latency": "0.001s"},
        fields={"event": "webhook", "source": "leadprosper", "event_id": "e", "marked": False},
    )
    [record] = captured
    ours, reference = _lines(lambda: logging.makeLogRecord(record.__dict__))
    assert ours == reference
    assert ours["logging.googleapis.com/trace"] == f"projects/p/traces/{trace.trace_id}"
    assert ours["event"] == "webhook"
    assert ours["httpRequest"]["status"] == 202


def test_a_trace_id_the_reference_would_break_on_stays_valid_json() -> None:
    record = logging.LogRecord("x", logging.INFO, "f.py", 1, "m", (), None)
    record.trace = 'a"b\x1f'
    stream = io.StringIO()
    StructuredLineHandler(stream).handle(record)
    assert json.loads(stream.getvalue())["logging.googleapis.com/trace"] == 'a"b\x1f'


def test_a_field_json_cannot_hold_is_written_as_text_not_dropped_with_its_line() -> None:
    """A tuple key (what dataclasses.asdict makes of a Counter) or an object made json.dumps
    raise, and the handler then dropped the whole line: the drainer's failure report was lost."""
    stream = io.StringIO()
    logger = logging.getLogger("hookpipe.test.fallback")
    logger.handlers[:] = [StructuredLineHandler(stream)]
    logger.propagate = False
    fields = {"event": "spool_drain", "errors": {("TimeoutError", 3): 1}, "at": object()}
    log_event(logger, logging.ERROR, "spool drain: 0 published", project_id="p", fields=fields)
    line = json.loads(stream.getvalue())
    assert line["message"] == "spool drain: 0 published"
    assert line["severity"] == "ERROR"
    assert line["errors"] == {"('TimeoutError', 3)": 1}
    assert line["at"].startswith("<object object")


def test_log_request_writes_one_canonical_line_of_the_shape_both_services_share() -> None:
    from hookpipe.logging import log_request

    stream = io.StringIO()
    logger = logging.getLogger("hookpipe.test.request")
    logger.propagate = False
    logger.handlers[:] = [StructuredLineHandler(stream)]
    logger.setLevel(logging.INFO)
    log_request(
        logger,
        logging.INFO,
        event="webhook",
        method="POST",
        path="/webhooks/leadprosper",
        status=202,
        outcome="spooled",
        reason=None,
        seconds=0.0123456,
        project_id="p",
        revision="r-1",
        trace=TraceContext("0af7651916cd43dd8448eb211c80319c", None, False),
        http={"requestSize": "10"},
        fields={"source": "leadprosper", "event_id": "e-1"},
    )
    line = json.loads(stream.getvalue())
    assert line["message"] == "POST /webhooks/leadprosper 202 spooled"
    assert line["httpRequest"] == {
        "requestMethod": "POST",
        "requestUrl": "/webhooks/leadprosper",
        "status": 202,
        "latency": "0.012346s",
        "requestSize": "10",
    }
    assert {k: line[k] for k in ("event", "outcome", "reason", "latency_ms", "revision")} == {
        "event": "webhook",
        "outcome": "spooled",
        "reason": None,
        "latency_ms": 12.346,
        "revision": "r-1",
    }
    assert (line["source"], line["event_id"]) == ("leadprosper", "e-1")
    assert (
        line["logging.googleapis.com/trace"] == "projects/p/traces/0af7651916cd43dd8448eb211c80319c"
    )


def test_no_line_grows_with_what_a_sender_sends() -> None:
    """Cloud Logging drops an entry over 256 KB (and the metric point counted from it)."""
    from hookpipe.logging import log_request

    stream = io.StringIO()
    logger = logging.getLogger("hookpipe.test.bounded")
    logger.propagate = False
    logger.handlers[:] = [StructuredLineHandler(stream)]
    logger.setLevel(logging.INFO)
    huge = "x" * 1_000_000
    try:
        raise ValueError(huge)
    except ValueError as error:
        exc = error
    log_request(
        logger,
        logging.ERROR,
        event="webhook",
        method="POST",
        path="/webhooks/" + huge,
        status=500,
        outcome="error",
        reason="form body does not parse: " + huge,
        seconds=0.1,
        project_id="p",
        revision="r",
        http={"userAgent": huge},
        fields={"source": huge, "event_ids": [huge] * 1000, "nested": {"a": huge}},
        exc=exc,
    )
    line = stream.getvalue()
    assert len(line.encode()) < 100_000
    parsed = json.loads(line)
    assert parsed["reason"].startswith("form body does not parse: xxx")
    assert parsed["reason"].endswith("…")
    assert len(parsed["event_ids"]) == 21  # 20 and an ellipsis


def test_a_form_field_that_does_not_parse_is_not_quoted_whole() -> None:
    from hookpipe.errors import MalformedPayload
    from hookpipe.payload import normalize

    with pytest.raises(MalformedPayload) as caught:
        normalize(b"a=1&" + b"x" * 1_000_000, "application/x-www-form-urlencoded")
    assert len(str(caught.value)) < 200
