"""run_bounded: bounded worker threads over one iterator, and what happens when something fails."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from pipeline_step.support.concurrency import run_bounded


class ListingBrokeError(Exception):
    pass


def items_that_break_after(count: int) -> Iterator[int]:
    yield from range(count)
    raise ListingBrokeError("the listing broke off")


@pytest.mark.parametrize("workers", [1, 4])
def test_a_failing_items_iterator_stops_the_run_and_is_raised(workers: int) -> None:
    """A lazy listing that fails must not end a worker quietly, with the rest of the items skipped."""
    done: list[int] = []
    lock = threading.Lock()

    def work(item: int) -> None:
        with lock:
            done.append(item)

    with pytest.raises(ListingBrokeError):
        run_bounded(items_that_break_after(10), work, workers=workers)
    assert sorted(done) == list(range(10))


@pytest.mark.parametrize("workers", [1, 4])
def test_a_failing_item_stops_the_others_and_is_raised(workers: int) -> None:
    started: list[int] = []
    lock = threading.Lock()

    def work(item: int) -> None:
        with lock:
            started.append(item)
        if item == 3:
            raise ValueError("item 3")

    with pytest.raises(ValueError, match="item 3"):
        run_bounded(range(1000), work, workers=workers)
    assert len(started) < 1000


def test_a_stop_request_ends_the_run_without_error() -> None:
    stop = threading.Event()
    seen: list[int] = []

    def work(item: int) -> None:
        seen.append(item)
        if item == 5:
            stop.set()

    run_bounded(range(100), work, workers=1, stop=stop.is_set)
    assert seen == list(range(6))
