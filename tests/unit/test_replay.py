"""The one replay loop (``hookpipe_ops.replay``) with a tiny fake source and the fake publisher
of test_republish: a letter is taken off its source only after its republish is confirmed, its
whole data is what is republished, what this run replayed and saw fail again is counted and left,
the limit and a dry run hold, and whatever is still held is released at the end."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

from hookpipe.deadletters import REPLAYED_AT, DeadLetter, timestamp
from hookpipe_ops.replay import replay

from tests.unit.test_republish import NOW, FakePublisher, letter, republisher


class FakeSource:
    def __init__(self, letters: list[DeadLetter]) -> None:
        self.letters = letters
        self.events: list[str] = []
        self.scanned = 0

    def __iter__(self) -> Iterator[DeadLetter]:
        for one in self.letters:
            self.scanned += 1
            yield replace(one, data=b"preview")

    def keep_holding(self) -> None:
        self.events.append("hold")

    def whole(self, letter: DeadLetter) -> DeadLetter:
        return replace(letter, data=b"whole " + letter.message_id.encode())

    def replayed(self, letter: DeadLetter) -> None:
        self.events.append(f"done {letter.message_id}")

    def release(self) -> None:
        self.events.append("release")


def test_each_letter_is_done_only_once_its_whole_data_is_republished() -> None:
    publisher, source = FakePublisher(), FakeSource([letter(n) for n in range(3)])
    summary = replay(source, republisher(publisher, None, [0.0]), max_messages=2, dry_run=False)
    assert [data for _, data, _ in publisher.published] == [b"whole m0", b"whole m1"]
    assert source.events == ["hold", "done m0", "hold", "done m1", "release"]
    assert (summary.scanned, summary.selected, summary.replayed, summary.failed) == (3, 2, 2, 0)


def test_a_republish_not_confirmed_leaves_the_letter_on_its_source() -> None:
    publisher, source = FakePublisher(fail=True), FakeSource([letter(0)])
    summary = replay(source, republisher(publisher, None, [0.0]), max_messages=9, dry_run=False)
    assert source.events == ["hold", "release"]
    assert (summary.replayed, summary.failed) == (0, 1)


def test_what_this_run_replayed_and_saw_again_is_counted_and_left() -> None:
    again = letter(1)
    again = replace(again, attributes={**again.attributes, REPLAYED_AT: timestamp(NOW)})
    earlier = letter(2)
    earlier_at = timestamp(NOW - timedelta(days=1))
    earlier = replace(earlier, attributes={**earlier.attributes, REPLAYED_AT: earlier_at})
    publisher, source = FakePublisher(), FakeSource([letter(0), again, earlier])
    summary = replay(source, republisher(publisher, None, [0.0]), max_messages=9, dry_run=False)
    assert summary.failed_again == 1
    assert [a["ce-id"] for _, _, a in publisher.published] == ["e0", "e2"]


def test_a_dry_run_republishes_nothing_and_takes_nothing_off() -> None:
    publisher, source = FakePublisher(), FakeSource([letter(0), letter(1)])
    summary = replay(source, republisher(publisher, None, [0.0]), max_messages=9, dry_run=True)
    assert publisher.published == []
    assert source.events == ["release"]
    assert summary.selected == 2
    assert [x.message_id for x in summary.letters] == ["m0", "m1"]
