"""Replaying dead letters: the one loop both replays run, live from the dead-letter subscription
(:mod:`hookpipe_ops.dead_letter_subscription`) and from the archive
(:mod:`hookpipe_ops.dead_letter_archive`).

For each selected dead letter, in order: wait for the pace, keep the rest held, read its whole
data, republish it (confirmed, stamped and audited by :class:`~hookpipe_ops.republish.Republisher`),
and only then tell its source it is done (the subscription acks it, the archive stamps its row).
An interruption at any point loses nothing: at worst a message is replayed twice, which the
worker's idempotent writes absorb.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from hookpipe.deadletters import DeadLetter

from hookpipe_ops.deadletters import replayed_since
from hookpipe_ops.errors import RepublishFailed
from hookpipe_ops.republish import Republisher


class ReplaySource(Protocol):
    """Where a replay's dead letters come from (the port; adapters in the modules above)."""

    @property
    def scanned(self) -> int:
        """How many it looked at, selected or not."""
        ...

    def __iter__(self) -> Iterator[DeadLetter]:
        """The dead letters the operator's filters select, oldest first where it can tell."""
        ...

    def keep_holding(self) -> None:
        """Keep what is listed but not yet replayed from going to anyone else."""
        ...

    def whole(self, letter: DeadLetter) -> DeadLetter:
        """``letter`` with all of its data (a listing may carry a preview only)."""
        ...

    def replayed(self, letter: DeadLetter) -> None:
        """``letter`` was republished and confirmed: take it off the source."""
        ...

    def release(self) -> None:
        """Give back whatever is still held, untouched."""
        ...


type Progress = Callable[[DeadLetter, str], None]


@dataclass
class ReplaySummary:
    scanned: int = 0
    selected: int = 0
    replayed: int = 0
    failed: int = 0
    # Replayed by this run and dead-lettered again before it ended: left for the next run.
    failed_again: int = 0
    letters: list[DeadLetter] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """What ``--json`` prints of it (docs/operations.md names the fields)."""
        return {
            "scanned": self.scanned,
            "selected": self.selected,
            "replayed": self.replayed,
            "failed": self.failed,
            "failed_again": self.failed_again,
            "messages": [letter.as_dict(80) for letter in self.letters],
        }


def replay(
    source: ReplaySource,
    republisher: Republisher,
    *,
    max_messages: int,
    dry_run: bool,
    on_progress: Progress = lambda letter, outcome: None,
) -> ReplaySummary:
    """Republish up to ``max_messages`` of what ``source`` selects (none with ``dry_run``)."""
    summary = ReplaySummary()
    started = republisher.now()
    try:
        for letter in source:
            if replayed_since(letter, started):
                # A message whose cause is not fixed would otherwise go round (dead-letter
                # topic → replay → worker → dead-letter topic) until the scan limit.
                summary.failed_again += 1
                continue
            if summary.selected >= max_messages:
                continue  # still scanned: what failed again is counted all the same
            summary.selected += 1
            summary.letters.append(letter)
            if dry_run:
                on_progress(letter, "would replay")
                continue
            republisher.wait_turn()
            source.keep_holding()
            whole = source.whole(letter)
            try:
                new_id = republisher.republish(whole)
            except RepublishFailed as exc:  # counted and reported (exit 4); the letter stays
                summary.failed += 1
                on_progress(letter, f"failed: {exc}")
                continue
            source.replayed(letter)  # only now: the republish is confirmed
            summary.replayed += 1
            on_progress(letter, f"replayed as {new_id}")
    finally:
        source.release()
        summary.scanned = source.scanned
    return summary
