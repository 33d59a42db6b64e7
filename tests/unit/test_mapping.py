from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Context, Decimal
from pathlib import Path
from typing import Any

import pytest
from hookpipe.mapping import MappingError, convert, map_columns
from hookpipe.sources import ColumnSpec, SourceConfig, SourceConfigError, load_source_configs
from hypothesis import given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("type_", "raw", "expected"),
    [
        ("string", "LP-1", "LP-1"),
        ("string", 42, "42"),
        ("integer", "42", 42),
        ("integer", 7.0, 7),
        ("numeric", "12.50", Decimal("12.50")),
        ("numeric", 3, Decimal(3)),
        ("timestamp", "1795683600", datetime(2026, 11, 26, 9, 0, tzinfo=UTC)),
        ("timestamp", 1795683600000, datetime(2026, 11, 26, 9, 0, tzinfo=UTC)),
        ("timestamp", "2026-11-26 09:00:00", datetime(2026, 11, 26, 9, tzinfo=UTC)),
        ("timestamp", "2026-11-26T09:00:00-05:00", datetime(2026, 11, 26, 14, tzinfo=UTC)),
        ("timestamp", "2026-11-26T09:00:00Z", datetime(2026, 11, 26, 9, tzinfo=UTC)),
        ("string", None, None),
        ("numeric", "", None),
    ],
)
def test_conversions(type_: Any, raw: Any, expected: Any) -> None:
    assert convert(ColumnSpec(field="f", type=type_), raw) == expected


@pytest.mark.parametrize(
    ("type_", "raw", "message"),
    [
        ("integer", "4.5", "'4.5' is not a valid integer"),
        ("integer", 4.5, "is not a valid integer"),
        ("numeric", "NaN", "is not a valid numeric"),
        ("numeric", "twelve", "is not a valid numeric"),
        ("numeric", "1e40", "'1e40' is not a valid numeric"),
        ("numeric", "-" + "9" * 30, "is not a valid numeric"),
        ("timestamp", "yesterday", "'yesterday' is not a valid timestamp"),
        ("string", ["a", "b"], "expected one string value, got a list"),
        ("integer", True, "got a boolean"),
        ("string", {"a": 1}, "got an object"),
        ("timestamp", 1e300, "is not a valid timestamp"),
        ("timestamp", "9" * 30, "is not a valid timestamp"),
    ],
)
def test_values_that_do_not_convert_name_the_field(type_: Any, raw: Any, message: str) -> None:
    with pytest.raises(MappingError, match=message) as info:
        convert(ColumnSpec(field="lp_field", type=type_), raw)
    assert str(info.value).startswith("lp_field: ")


def test_leadprosper_mapping() -> None:
    config = load_source_configs(REPO / "infra/sources.toml")["leadprosper"]
    payload = {
        "lp_request_uuid": "L1",  # the lead's id as a trigger sends it
        "lp_lead_id": "not a shortcode LeadProsper has: not mapped",
        "lp_status": "SOLD",
        "lp_timestamp": "1795683600",
        "lp_sold_price": "17.25",
        "other": "kept in the payload, not a column",
    }
    mapped = map_columns(config.columns, payload)
    assert mapped.values == {
        "lead_id": "L1",
        "status": "SOLD",
        "campaign_id": None,
        "event_time": datetime(2026, 11, 26, 9, 0, tzinfo=UTC),
        "purchase_price": None,
        "sold_price": Decimal("17.25"),
    }
    assert mapped.problems == {}


def test_a_value_that_does_not_convert_is_null_and_a_problem_not_an_error() -> None:
    config = load_source_configs(REPO / "infra/sources.toml")["leadprosper"]
    mapped = map_columns(
        config.columns,
        {"lp_request_uuid": "L1", "lp_purchase_price": "N/A", "lp_timestamp": 1e300},
    )
    assert mapped.values["lead_id"] == "L1"
    assert mapped.values["purchase_price"] is None
    assert mapped.values["event_time"] is None
    assert mapped.unconverted == {"purchase_price", "event_time"}
    problem = mapped.problems["purchase_price"]
    assert (problem.field, problem.value) == ("lp_purchase_price", "N/A")
    assert problem.reason == "'N/A' is not a valid numeric"


BQ_TYPES = {"string": "STRING", "integer": "INT64", "numeric": "NUMERIC", "timestamp": "TIMESTAMP"}


def test_every_mapped_column_exists_in_the_bigquery_schema_with_its_type() -> None:
    schema = {
        f["name"]: f
        for f in json.loads((REPO / "infra/bigquery/raw_events.schema.json").read_text())
    }
    for name, config in load_source_configs(REPO / "infra/sources.toml").items():
        for column, spec in config.columns.items():
            assert column in schema, f"{name}.{column} is not in raw_events.schema.json"
            assert schema[column]["type"] in (BQ_TYPES[spec.type], "INTEGER"), column
            assert schema[column]["mode"] == "NULLABLE", column


def test_current_state_tables_have_a_migration_with_every_column() -> None:
    migrations = "\n".join(
        p.read_text() for p in sorted((REPO / "infra/supabase/migrations").glob("*.sql"))
    )
    for config in load_source_configs(REPO / "infra/sources.toml").values():
        state = config.current_state
        if state is None:
            continue
        assert f"create table if not exists {state.table}" in migrations
        block = migrations.split(f"create table if not exists {state.table}")[1].split(");")[0]
        for column in (state.key, state.version, *state.columns, "event_id", "updated_at"):
            assert f"\n    {column} " in block, column


def test_current_state_must_use_mapped_columns(tmp_path: Path) -> None:
    config = {
        "event_type": "t",
        "auth": {"scheme": "token", "secret_env": "X"},
        "columns": {"k": {"field": "k"}},
        "current_state": {"table": "s.t", "key": "k", "version": "v", "columns": ["c"]},
    }
    with pytest.raises(ValueError, match=r"not mapped: \['c', 'v'\]"):
        SourceConfig.model_validate(config)
    bad = tmp_path / "sources.toml"
    bad.write_text(
        '[x]\nevent_type = "t"\nauth = { scheme = "carrier-pigeon", secret_env = "X" }\n'
    )
    with pytest.raises(SourceConfigError, match="source 'x'"):
        load_source_configs(bad)


def test_a_body_limit_over_what_a_pubsub_message_holds_is_refused(tmp_path: Path) -> None:
    toml = tmp_path / "sources.toml"
    toml.write_text(
        '[x]\nevent_type = "t"\nmax_body_bytes = 33554432\n'
        'auth = { scheme = "token", secret_env = "X" }\n'
    )
    with pytest.raises(SourceConfigError, match=r"max_body_bytes.*9437184"):
        load_source_configs(toml)
    toml.write_text(toml.read_text().replace("33554432", "9437184"))
    assert load_source_configs(toml)["x"].max_body_bytes == 9437184


_numbers = (
    st.decimals(allow_nan=True, allow_infinity=True).map(str)
    | st.integers(min_value=-(2**70), max_value=2**70).map(str)
    | st.from_regex(r"\A-?[0-9]{0,40}\.[0-9]{0,40}(E[+-]?[0-9]{1,5})?\Z")
    | st.floats().map(repr)
)


@settings(max_examples=1500, deadline=None)
@given(raw=_numbers)
def test_every_typed_number_is_one_both_sinks_hold(raw: str) -> None:
    """NUMERIC: under 10**29 and exact at 9 fraction digits (BigQuery; Postgres numeric holds
    that too, and refuses over 16383 fraction digits); integer: INT64 (bigint)."""
    for type_ in ("numeric", "integer"):
        try:
            value = convert(ColumnSpec(field="f", type=type_), raw)
        except MappingError:
            continue
        if value is None:
            continue
        if type_ == "integer":
            assert -(2**63) <= value < 2**63
        else:
            assert value.is_finite()
            assert value.copy_abs() < Decimal(10) ** 29
            assert value == value.quantize(Decimal("1e-9"), context=Context(prec=60))
            assert value == Decimal(raw.strip())  # exact: nothing rounded away


@pytest.mark.parametrize(
    "raw",
    ["1E-20000", "0." + "1" * 20000, "1.0000000001", "1e29", str(2**63), "-9223372036854775809"],
)
def test_numbers_beyond_what_a_sink_holds_do_not_convert(raw: str) -> None:
    type_ = "integer" if raw.lstrip("-").isdigit() else "numeric"
    with pytest.raises(MappingError):
        convert(ColumnSpec(field="f", type=type_), raw)  # type: ignore[arg-type]
