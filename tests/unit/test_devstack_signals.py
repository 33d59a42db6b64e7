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
