"""The pure half of ``hookpipe trace`` (``hookpipe_ops.trace``): what a key may be, the verdict
each combination of facts gives (an unreadable store is "unknown", never a wrong verdict), the
exit codes, and reading a canonical request line. tests/e2e/test_trace.py runs it on the stack."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from hookpipe.event import event_id
from hookpipe.sources import SourceConfig, load_source_configs
from hookpipe_ops.leadprosper import TRIGGER_STATUSES
from hookpipe_ops.trace import (
    UNKNOWN,
    ArchivedLetter,
    Facts,
    LogLine,
    SpooledObject,
    StoredEvent,
    exit_code,
    lookup_for,
    timeline,
    verdict,
)
from hookpipe_ops.trace_sources import cloud_logging_filter, log_line

SOURCES = load_source_configs(Path(__file__).resolve().parents[2] / "infra/sources.toml")
T0 = datetime(2026, 12, 3, 12, tzinfo=UTC)
HEADER_SOURCE = SourceConfig.model_validate(
    {
        "event_type": "com.github.delivery",
        "formats": ["json"],
        "idempotency": {"header": "X-GitHub-Delivery"},
        "auth": {"scheme": "hmac", "secret_env": "S", "signature_header": "X-Hub-Signature-256"},
    }
)


def row(eid: str = "e1", **changes: object) -> StoredEvent:
    fields: dict[str, object] = {
        "event_id": eid, "source": "leadprosper", "event_type": "t", "received_at": T0,
        "pubsub_message_id": "m1", "problems": [], "origin": "webhook",
    }  # fmt: skip
    fields.update(changes)
    return StoredEvent(**fields)  # type: ignore[arg-type]


def ingest_line(outcome: str = "accepted", status: int = 202) -> LogLine:
    return LogLine("ingest", "webhook", T0, "e1", "leadprosper", status, outcome, None)


def test_a_header_value_is_looked_up_as_the_event_id_ingest_gives_it() -> None:
    lookup = lookup_for("delivery-42", {"github": HEADER_SOURCE}, T0)
    assert lookup.event_ids == ("delivery-42", event_id("github", "header:delivery-42"))
    assert lookup.lead_keys == ()


def test_a_lead_key_is_looked_up_by_payload_and_as_each_status_events_id() -> None:
    lookup = lookup_for("uuid-1", SOURCES, T0, lead_statuses={"leadprosper": TRIGGER_STATUSES})
    [lead] = lookup.lead_keys
    assert (lead.source, lead.field) == ("leadprosper", "lp_request_uuid")
    sold = event_id("leadprosper", "fields:uuid-1\x1fSOLD")
    assert sold in lookup.event_ids
    assert len(lookup.event_ids) == 1 + len(TRIGGER_STATUSES)


def test_only_the_named_source_is_looked_up() -> None:
    lookup = lookup_for("k", {"github": HEADER_SOURCE, **SOURCES}, T0, source="github")
    assert lookup.lead_keys == ()
    assert len(lookup.event_ids) == 2


def test_in_both_sinks_is_landed_and_exits_0() -> None:
    facts = Facts("e1", postgres=row(), bigquery=row(), spool=None, logs=[ingest_line()])
    assert verdict(facts).kind == "landed"
    assert exit_code([facts]) == 0


def test_an_unreadable_bigquery_is_unknown_never_landed() -> None:
    facts = Facts("e1", postgres=row(), bigquery=UNKNOWN)
    assert verdict(facts).kind == "unknown"
    assert exit_code([facts]) == 1


def test_one_sink_only_is_said_and_which() -> None:
    assert "Postgres only" in verdict(Facts("e1", postgres=row(), bigquery=None)).line
    assert "BigQuery only" in verdict(Facts("e1", bigquery=row())).line


def test_a_dead_letter_not_replayed_says_the_replay_to_run() -> None:
    letter = ArchivedLetter("dl-1", "e1", "RowRejected", "bad", T0, None, 0, "m1")
    found = verdict(Facts("e1", bigquery=None, archive=[letter]))
    assert found.kind == "dead-lettered"
    assert found.next == "hookpipe dlq replay --from-archive --message-id dl-1"


def test_in_the_spool_is_in_flight_and_names_the_drainer() -> None:
    facts = Facts("e1", bigquery=None, spool=SpooledObject("spool/e1", T0), logs=[])
    found = verdict(facts)
    assert found.kind == "in-flight"
    assert "drain" in (found.next or "")
    assert [s.stage for s in timeline(facts)] == ["spooled", "committed"]


def test_published_with_no_push_finished_is_in_flight() -> None:
    found = verdict(Facts("e1", bigquery=None, spool=None, logs=[ingest_line()]))
    assert found.kind == "in-flight"
    assert "published by ingest" in found.line


def test_a_refused_webhook_points_at_the_reconcile() -> None:
    found = verdict(Facts("e1", bigquery=None, logs=[ingest_line("rejected", 401)]))
    assert "not kept" in found.line
    assert "reconcile" in (found.next or "")


def test_nothing_matched_exits_2() -> None:
    assert exit_code([]) == 2


def test_a_request_line_is_placed_when_its_request_came() -> None:
    entry = {
        "event": "push", "time": "2026-12-03T12:00:01Z", "event_id": "e1", "source": "s",
        "outcome": "committed", "latency_ms": 250.0, "delivery_attempt": 2,
        "httpRequest": {"status": 204},
        "logging.googleapis.com/trace": "projects/p/traces/abc",
    }  # fmt: skip
    line = log_line(entry)
    assert line is not None
    assert line.at == T0 + timedelta(seconds=1) - timedelta(milliseconds=250)
    assert (line.service, line.status, line.delivery_attempt, line.trace) == (
        "worker",
        204,
        2,
        "abc",
    )
    assert log_line({"event": "batch", "time": "2026-12-03T12:00:00Z"}) is None
    assert log_line({"event": "push", "time": "not a time"}) is None


def test_the_cloud_logging_filter_quotes_what_it_is_given() -> None:
    query = cloud_logging_filter(['a"b\\c'], ["m1"], T0)
    assert 'jsonPayload.event_id="a\\"b\\\\c"' in query
    assert 'jsonPayload.message_id="m1"' in query
    assert query.startswith('timestamp>="2026-12-03T12:00:00Z"')
