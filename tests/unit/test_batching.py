"""MicroBatcher (group commit) with a recording flush function."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from hookpipe.batching import BatcherClosed, BatchPolicy, MicroBatcher


class Overloaded(Exception):
    pass


class Recorder:
    def __init__(self, delay: float = 0.0) -> None:
        self.batches: list[list[int]] = []
        self.delay = delay
        self.in_flight = 0
        self.max_in_flight = 0
        self.started = asyncio.Event()  # set when the first flush begins

    async def __call__(self, items: Sequence[int]) -> list[int | BaseException]:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.batches.append(list(items))
        self.started.set()
        await asyncio.sleep(self.delay)
        self.in_flight -= 1
        return [ValueError(f"bad {i}") if i < 0 else i * 10 for i in items]


def _batcher(flush: Recorder, **policy: float) -> MicroBatcher[int, int]:
    return MicroBatcher(
        flush,
        BatchPolicy(**policy),
        size=lambda _: 100,  # type: ignore[arg-type]
        overloaded=lambda n: Overloaded(n),
    )


def test_each_caller_gets_its_own_outcome_and_bad_items_fail_alone() -> None:
    async def scenario() -> list[int | BaseException]:
        batcher = _batcher(Recorder(), max_delay=0.01)
        return await asyncio.gather(
            *(batcher.submit(i) for i in (1, -2, 3)), return_exceptions=True
        )

    first, second, third = asyncio.run(scenario())
    assert (first, third) == (10, 30)
    assert isinstance(second, ValueError)


def test_concurrent_submits_share_a_batch_up_to_max_items() -> None:
    recorder = Recorder()

    async def scenario() -> None:
        batcher = _batcher(recorder, max_items=4, max_delay=0.05)
        await asyncio.gather(*(batcher.submit(i) for i in range(10)))

    asyncio.run(scenario())
    assert [len(b) for b in recorder.batches] == [4, 4, 2]
    assert sorted(i for b in recorder.batches for i in b) == list(range(10))


def test_max_bytes_closes_a_batch() -> None:
    recorder = Recorder()

    async def scenario() -> None:
        batcher = _batcher(recorder, max_bytes=250, max_delay=0.05)
        await asyncio.gather(*(batcher.submit(i) for i in range(5)))

    asyncio.run(scenario())
    assert [len(b) for b in recorder.batches] == [2, 2, 1]


def test_busy_slots_let_batches_grow_and_concurrency_is_bounded() -> None:
    recorder = Recorder(delay=0.02)

    async def scenario() -> None:
        batcher = _batcher(recorder, max_concurrent=1, max_delay=0)
        first = asyncio.ensure_future(batcher.submit(0))
        await recorder.started.wait()  # the first batch is in flight now
        await asyncio.gather(first, *(batcher.submit(i) for i in range(1, 20)))

    asyncio.run(scenario())
    assert recorder.batches[0] == [0]
    assert recorder.batches[1] == list(range(1, 20))
    assert recorder.max_in_flight == 1


def test_full_queue_is_refused_at_once() -> None:
    async def scenario() -> None:
        batcher = _batcher(Recorder(delay=0.05), max_queued=3, max_concurrent=1, max_delay=1)
        waiting = [asyncio.ensure_future(batcher.submit(i)) for i in range(3)]
        await asyncio.sleep(0)
        with pytest.raises(Overloaded):
            await batcher.submit(99)
        await batcher.close()
        assert [await w for w in waiting] == [0, 10, 20]

    asyncio.run(scenario())


def test_a_failing_flush_fails_every_caller_of_that_batch() -> None:
    async def broken(items: Sequence[int]) -> list[int | BaseException]:
        raise ConnectionError("sink down")

    async def scenario() -> list[int | BaseException]:
        batcher: MicroBatcher[int, int] = MicroBatcher(
            broken,
            BatchPolicy(max_delay=0.01),
            size=lambda _: 1,
            overloaded=lambda n: Overloaded(n),
        )
        return await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)

    assert all(isinstance(r, ConnectionError) for r in asyncio.run(scenario()))


def test_close_flushes_what_is_queued_and_refuses_new_items() -> None:
    recorder = Recorder()

    async def scenario() -> None:
        batcher = _batcher(recorder, max_delay=10)  # would wait 10 s without close()
        waiting = asyncio.ensure_future(batcher.submit(5))
        await asyncio.sleep(0)
        await batcher.close()
        assert await waiting == 50
        with pytest.raises(BatcherClosed):
            await batcher.submit(6)

    asyncio.run(scenario())


def test_an_item_whose_caller_gave_up_is_never_flushed() -> None:
    """Ingest answers 503 when its publish times out; the webhook must not be published after."""
    flushed: list[list[int]] = []
    flushing, gate = asyncio.Event(), asyncio.Event()

    async def flush(items: Sequence[int]) -> list[int | BaseException]:
        flushed.append(list(items))
        flushing.set()
        await gate.wait()
        return [i * 10 for i in items]

    async def scenario() -> int:
        batcher: MicroBatcher[int, int] = MicroBatcher(
            flush,
            BatchPolicy(max_concurrent=1),
            size=lambda _: 100,
            overloaded=lambda n: Overloaded(n),
        )
        first = asyncio.create_task(batcher.submit(1))  # holds the only slot until the gate
        await flushing.wait()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(batcher.submit(2), 0.01)  # queued behind it; gives up
        third = asyncio.create_task(batcher.submit(3))
        gate.set()
        assert await first == 10
        return await third

    assert asyncio.run(scenario()) == 30
    assert flushed == [[1], [3]]


def test_a_batch_goes_at_once_when_the_recent_batches_callers_are_back() -> None:
    """Two callers in flight, each resubmitting when answered: after the first batch (which
    waits out max_delay, there being no history yet), every batch of two goes at once. With a
    max_delay of a minute, the guard would fail the test long before a batch waited it out."""
    recorder = Recorder()

    async def scenario() -> None:
        batcher = _batcher(recorder, max_delay=0.05, recent_window=60)
        await asyncio.wait_for(asyncio.gather(batcher.submit(0), batcher.submit(1)), 10)
        batcher._policy = BatchPolicy(max_delay=60, recent_window=60)  # no more waiting it out
        for i in range(2, 8, 2):
            await asyncio.wait_for(asyncio.gather(batcher.submit(i), batcher.submit(i + 1)), 10)

    asyncio.run(scenario())
    assert recorder.batches == [[0, 1], [2, 3], [4, 5], [6, 7]]


def test_without_a_recent_batch_as_large_the_batch_waits_for_max_delay() -> None:
    """Fewer callers than the largest recent batch: they wait (here the guard's timeout), as
    when the window holds nothing."""
    recorder = Recorder()

    async def scenario() -> bool:
        batcher = _batcher(recorder, max_delay=0.02, recent_window=60)
        await asyncio.gather(*(batcher.submit(i) for i in range(3)))
        batcher._policy = BatchPolicy(max_delay=60, recent_window=60)
        try:
            await asyncio.wait_for(asyncio.gather(batcher.submit(3), batcher.submit(4)), 0.2)
        except TimeoutError:
            return True
        return False

    assert asyncio.run(scenario())
    assert recorder.batches == [[0, 1, 2]]
