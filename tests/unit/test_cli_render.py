"""What the operator CLI prints of sender-controlled content: never markup, never raw control
characters (a dead letter's payload, attributes and reason are the sender's words)."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from hookpipe.deadletters import DeadLetter
from hookpipe_ops.cli.common import safe
from hookpipe_ops.cli.dlq import replay_line
from hookpipe_ops.cli.tables import peek_table
from hookpipe_ops.replay import ReplaySummary
from rich.console import Console

HOSTILE = DeadLetter(
    message_id="m-[bold]1",
    publish_time=datetime(2026, 11, 30, tzinfo=UTC),
    data=b'{"lp_timestamp": "[/]", "note": "\x1b[41mred\x1b[0m \x07 [link=http://x]y[/link]"}',
    attributes={
        "ce-id": "[/]",
        "ce-source": "/sources/[red]x",
        "hookpipe-error-class": "RowRejected",
        "hookpipe-error-message": "postgres rejected [/] \x1b]0;title\x07",
    },
)


def _render(console_width: int = 200) -> str:
    stream = io.StringIO()
    console = Console(file=stream, width=console_width, force_terminal=True, color_system=None)
    console.print(peek_table([HOSTILE], width=200, title="1 dead letter"))
    return stream.getvalue()


def test_sender_markup_is_printed_as_text_not_interpreted() -> None:
    text = _render()  # raised rich.errors.MarkupError before
    assert "[/]" in text
    assert "[bold]" in text
    assert "[red]" in text


def test_terminal_escapes_never_reach_the_operators_terminal() -> None:
    text = _render()
    assert "\x1b[41m" not in text
    assert "\x1b]0;" not in text
    assert "\x07" not in text
    assert "\\x1b[41m" in text  # shown, visibly escaped


def test_safe_escapes_markup_and_control_characters() -> None:
    assert safe("a[/]b\x1b\x00\u009b") == "a\\[/]b\\x1b\\x00\\x9b"


def test_a_replay_summary_says_what_was_selected_replayed_and_failed_and_where() -> None:
    live = ReplaySummary(scanned=9, selected=3, replayed=2, failed=1)
    assert replay_line(live, False, "t") == "selected 3 · replayed 2 · failed 1 → t"
    dry = ReplaySummary(selected=3)
    assert replay_line(dry, True, "t") == "selected 3 · would replay 3 · failed 0 → t"
