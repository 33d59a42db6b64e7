"""`make run`'s stop handler survives a signal arriving while it runs (it once deadlocked).

A Python signal handler can run between any two bytecodes of the main thread, its own included.
The harness makes that deterministic: a trace function re-enters the handler at every line the
handler executes (down into the standard library), as a second SIGTERM would."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from hookpipe_devstack.__main__ import StopRequested

Handler = Callable[[int, FrameType | None], None]


def _survives_reentry(handler: Handler, seconds: float = 5.0) -> bool:
    """Run ``handler`` with a nested call at each line it executes; False if it hangs."""
    seen: set[tuple[object, int]] = set()

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line" and (frame.f_code, frame.f_lineno) not in seen:
            seen.add((frame.f_code, frame.f_lineno))
            handler(signal.SIGTERM, None)  # the second signal, arriving right here
        return tracer

    def deliver() -> None:
        sys.settrace(tracer)
        try:
            handler(signal.SIGTERM, None)
        finally:
            sys.settrace(None)

    thread = threading.Thread(target=deliver, daemon=True)
    thread.start()
    thread.join(seconds)
    return not thread.is_alive()


def test_the_stop_handler_survives_a_signal_during_itself() -> None:
    stopping = StopRequested()
    assert _survives_reentry(stopping)
    assert stopping
    assert set(stopping.signals) == {signal.SIGTERM}


def test_the_harness_catches_a_handler_that_takes_a_lock() -> None:
    """The handler `make run` had: Event.set() re-entered under its own lock hangs for good (the
    daemon thread is left behind)."""
    event = threading.Event()
    assert not _survives_reentry(lambda signum, frame: event.set(), seconds=2.0)


def test_the_stand_in_takes_any_key_the_stack_draws_even_one_that_begins_with_a_dash() -> None:
    """secrets.token_urlsafe() begins with "-" once in 64 draws; passed as its own argument,
    argparse took it for an option and the stand-in (so `make run`) refused to start."""
    from pathlib import Path

    from hookpipe_devstack.leadprosper_standin import parse_args
    from hookpipe_devstack.stack import Stack

    for key in ("-starts-with-a-dash", "--looks-like-an-option", "plain"):
        stack = Stack(Path("/nonexistent"), project_id="p", leadprosper_key=key)
        argv = list(stack._standin_process().argv)
        assert parse_args(argv[3:]).api_key == key
