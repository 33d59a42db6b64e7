from __future__ import annotations

import pytest
from hookpipe.tracing import TraceContext, new_trace, parse_trace

TRACE = "0af7651916cd43dd8448eb211c80319c"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (
            {"traceparent": f"00-{TRACE}-b7ad6b7169203331-01"},
            TraceContext(TRACE, "b7ad6b7169203331", True),
        ),
        (
            {
                "traceparent": f"00-{TRACE}-b7ad6b7169203331-00",
                "x-cloud-trace-context": f"{'1' * 32}/1;o=1",
            },
            TraceContext(TRACE, "b7ad6b7169203331", False),
        ),  # traceparent wins
        ({"x-cloud-trace-context": f"{TRACE}/123;o=1"}, TraceContext(TRACE, f"{123:016x}", True)),
        ({"x-cloud-trace-context": TRACE}, TraceContext(TRACE, None, False)),
        (
            {"traceparent": "garbage", "x-cloud-trace-context": f"{TRACE}/0"},
            TraceContext(TRACE, None, False),
        ),
        ({"traceparent": f"00-{'0' * 32}-b7ad6b7169203331-01"}, None),
        ({}, None),
    ],
)
def test_parse_trace(headers: dict[str, str], expected: TraceContext | None) -> None:
    assert parse_trace(headers) == expected


def test_round_trip_and_log_field() -> None:
    trace = new_trace()
    assert parse_trace({"traceparent": trace.traceparent()}) == trace
    assert trace.log_trace("p") == f"projects/p/traces/{trace.trace_id}"


@pytest.mark.parametrize(
    "header",
    [f"{TRACE}/{'9' * 5000};o=1", f"{TRACE}/\u00b2;o=1", f"{TRACE}/{'1' * 40}"],
)
def test_a_hostile_cloud_trace_span_keeps_the_trace_and_drops_the_span(header: str) -> None:
    assert parse_trace({"x-cloud-trace-context": header}) in (
        TraceContext(TRACE, None, True),
        TraceContext(TRACE, None, False),
        None,
    )
