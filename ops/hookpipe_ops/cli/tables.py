"""The tables ``hookpipe`` prints. Everything a sender controls goes through :func:`safe`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hookpipe.deadletters import DeadLetter
from hookpipe.event import CE_ID
from rich.table import Table

from hookpipe_ops.cli.common import safe


def settings_table(title: str, rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> Table:
    table = Table(title=title)
    for header in headers:
        table.add_column(header)
    for row in rows:
        table.add_row(*(("—" if v is None else safe(str(v))) for v in row))
    return table


def counts_table(title: str, counts: Mapping[str, int]) -> Table:
    """``dlq stats``: messages per reason, source or age."""
    table = Table(title=f"by {title}")
    table.add_column(title)
    table.add_column("messages", justify="right")
    for key, count in counts.items():
        table.add_row(safe(key), str(count))
    return table


def peek_table(letters: Sequence[DeadLetter], width: int, title: str) -> Table:
    """Dead letters as a table; everything the sender controls is shown through :func:`safe`."""
    table = Table(title=title)
    for column in ("message id", "published", "reason", "source", "event id", "payload"):
        table.add_column(column, overflow="fold")
    for letter in letters:
        table.add_row(
            safe(letter.message_id),
            letter.publish_time.isoformat(timespec="seconds"),
            f"{safe(letter.reason)}\n[dim]{safe(letter.message)}[/]",
            safe(letter.source),
            safe(letter.attributes.get(CE_ID, "")),
            safe(letter.payload_preview(width)),
        )
    return table
