"""Current-state tables (e.g. one row per LeadProsper lead): a fold over the values that converted.

Each key's row holds, per column, the value of the newest event — by (version, event id) — in
which that column converted, whatever order events arrive in; its ``version`` and ``event_id`` are
those of the newest event applied. So:

* a redelivered or late older event never moves a column backwards;
* a column whose value did not convert (NULL + a problem in the events table) never overwrites a
  good stored value, while the columns that did convert in the same event move forward;
* an event whose key or version did not convert (or whose version was marked as too far ahead:
  ``hookpipe_worker.rows``) cannot be placed in order, and leaves current state alone.

Each column's version is kept in ``column_versions`` (``{"status": [version, event_id]}``); a
column missing there has never been set (the migration that added it backfilled older rows).

:func:`fold` merges one batch per key in Python (pure); a :class:`CurrentStateTable`, built once
per source at start-up, holds the one ``INSERT … ON CONFLICT DO UPDATE`` that merges the result
with what is stored (it depends only on the source's configuration).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hookpipe.event import rfc3339
from hookpipe.sources import CurrentStateSpec, SourceConfig
from psycopg import sql

from hookpipe_worker.rows import EventRow

type Version = tuple[datetime, str]  # (version column or receipt time, event id)

_PG_TYPES = {
    "string": "text",
    "integer": "bigint",
    "numeric": "numeric",
    "timestamp": "timestamptz",
}


@dataclass
class KeyState:
    """What one batch says about one key."""

    key: Any
    version: Version
    values: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, Version] = field(default_factory=dict)  # per converted column


def row_version(row: EventRow, spec: CurrentStateSpec) -> Version | None:
    """Where ``row`` stands among its key's events, or None when it cannot be placed."""
    if row.columns.get(spec.key) is None or {spec.key, spec.version} & row.unconverted:
        return None
    return (row.columns.get(spec.version) or row.received_at, row.event_id)


def fold(spec: CurrentStateSpec, rows: Sequence[EventRow]) -> list[KeyState]:
    """Per key, the newest converted value of each column among ``rows``, sorted by key (so
    concurrent batches lock keys in one order and cannot deadlock)."""
    states: dict[Any, KeyState] = {}
    for row in rows:
        version = row_version(row, spec)
        if version is None:
            continue
        key = row.columns[spec.key]
        state = states.setdefault(key, KeyState(key, version))
        state.version = max(state.version, version)
        for column in spec.columns:
            if column in row.unconverted:
                continue
            if column not in state.versions or state.versions[column] < version:
                state.values[column] = row.columns.get(column)
                state.versions[column] = version
    return [states[k] for k in sorted(states)]


def _versions_json(state: KeyState) -> str:
    return json.dumps({c: [rfc3339(v), event_id] for c, (v, event_id) in state.versions.items()})


class CurrentStateTable:
    """One source's current-state table: which rows are its, and its upsert statement."""

    def __init__(self, source: str, spec: CurrentStateSpec, types: Mapping[str, str]) -> None:
        """``types``: the source's column types (``string``, ``integer``, ...)."""
        self.source = source
        self.spec = spec
        # Rendered once: it depends only on the configuration, not on the batch.
        self.statement: bytes = upsert_statement(spec, types).as_bytes()

    def fold(self, rows: Sequence[EventRow]) -> list[KeyState]:
        """Per key, what this batch's rows from this source say (:func:`fold`)."""
        return fold(self.spec, [r for r in rows if r.source == self.source])

    def params(self, states: Sequence[KeyState]) -> list[list[Any]]:
        """The statement's parameters for ``states``: one array per column."""
        spec = self.spec
        return [
            [s.key for s in states],
            *([s.values.get(c) for s in states] for c in spec.columns),
            [s.version[0] for s in states],
            [s.version[1] for s in states],
            [_versions_json(s) for s in states],
        ]


def upsert_statement(spec: CurrentStateSpec, types: Mapping[str, str]) -> sql.Composed:
    """One INSERT … ON CONFLICT DO UPDATE merging a batch's key states (one array parameter per
    column, :meth:`CurrentStateTable.params`) into the stored rows."""
    schema, table = spec.table.split(".")
    t = sql.Identifier(schema, table)
    names = [spec.key, *spec.columns, spec.version, "event_id", "column_versions"]
    pg_types = [
        _PG_TYPES[types[spec.key]],
        *(_PG_TYPES[types[c]] for c in spec.columns),
        "timestamptz",
        "text",
        "jsonb",
    ]
    version, event_id = sql.Identifier(spec.version), sql.Identifier("event_id")
    incoming = sql.SQL("(EXCLUDED.{v}, EXCLUDED.{e})").format(v=version, e=event_id)
    stored = sql.SQL("({t}.{v}, {t}.{e})").format(t=t, v=version, e=event_id)
    row_newer = sql.SQL("{i} > {s}").format(i=incoming, s=stored)

    def column_newer(column: str) -> sql.Composable:
        # The incoming event converted this column, and is newer than the stored value's event.
        return sql.SQL(
            "(EXCLUDED.column_versions ? {c} AND {i} > ("
            "COALESCE(({t}.column_versions->{c}->>0)::timestamptz, '-infinity'), "
            "COALESCE({t}.column_versions->{c}->>1, '')))"
        ).format(c=sql.Literal(column), i=incoming, t=t)

    updates = [
        sql.SQL("{c} = CASE WHEN {newer} THEN EXCLUDED.{c} ELSE {t}.{c} END").format(
            c=sql.Identifier(c), newer=column_newer(c), t=t
        )
        for c in spec.columns
    ]
    updates += [
        sql.SQL("{n} = CASE WHEN {newer} THEN EXCLUDED.{n} ELSE {t}.{n} END").format(
            n=n, newer=row_newer, t=t
        )
        for n in (version, event_id)
    ]
    moved = sql.SQL(", ").join(
        sql.SQL("{c}, CASE WHEN {newer} THEN EXCLUDED.column_versions->{c} END").format(
            c=sql.Literal(c), newer=column_newer(c)
        )
        for c in spec.columns
    )
    updates.append(
        sql.SQL(
            "column_versions = {t}.column_versions || jsonb_strip_nulls(jsonb_build_object({m}))"
        ).format(t=t, m=moved)
    )
    any_newer = sql.SQL(" OR ").join([row_newer, *(column_newer(c) for c in spec.columns)])
    arrays = sql.SQL(", ").join(
        sql.SQL("%s::{}[]").format(sql.SQL(pg)) if pg != "jsonb" else sql.SQL("%s::text[]::jsonb[]")
        for pg in pg_types  # types from a fixed table
    )
    return sql.SQL(
        "INSERT INTO {t} ({columns}) SELECT * FROM unnest({arrays}) "
        "ON CONFLICT ({key}) DO UPDATE SET {updates}, updated_at = now() WHERE {any_newer}"
    ).format(
        t=t,
        columns=sql.SQL(", ").join(sql.Identifier(n) for n in names),
        arrays=arrays,
        key=sql.Identifier(spec.key),
        updates=sql.SQL(", ").join(updates),
        any_newer=any_newer,
    )


def current_state_tables(sources: Mapping[str, SourceConfig]) -> list[CurrentStateTable]:
    """The current-state table of each source that has one, in source order."""
    return [
        CurrentStateTable(
            source, config.current_state, {n: c.type for n, c in config.columns.items()}
        )
        for source, config in sorted(sources.items())
        if config.current_state is not None
    ]
