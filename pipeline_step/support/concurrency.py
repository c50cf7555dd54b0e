"""Bounded concurrency without one future per item.

``run_bounded`` starts ``workers`` threads that pull from a shared iterator,
so memory stays flat for 100,000 items, and stops taking new items once
``stop()`` returns true (in-flight items finish).
"""

from __future__ import annotations

import threading
from typing import Callable, Iterable, TypeVar

T = TypeVar("T")


def run_bounded(
    items: Iterable[T],
    work: Callable[[T], None],
    *,
    workers: int,
    stop: Callable[[], bool] = lambda: False,
) -> None:
    """Call ``work(item)`` for every item on up to ``workers`` threads.

    ``work`` handles its own errors; an exception escaping it, or raised by
    ``items`` itself, stops the run and is re-raised here after the other
    workers finish their current item.
    """
    iterator = iter(items)
    lock = threading.Lock()
    failures: list[BaseException] = []
    halt = threading.Event()

    def next_item() -> tuple[bool, T | None]:
        with lock:
            if halt.is_set() or stop():
                return False, None
            try:
                return True, next(iterator)
            except StopIteration:
                return False, None

    def loop() -> None:
        while True:
            try:
                # The items iterator may fail too (a lazy listing, a generator): that stops the run like
                # a failing item does, instead of ending this worker quietly with items skipped.
                ok, item = next_item()
                if not ok:
                    return
                work(item)  # type: ignore[arg-type]
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                with lock:
                    failures.append(exc)
                halt.set()
                return

    count = max(1, workers)
    if count == 1:
        loop()
    else:
        threads = [threading.Thread(target=loop, name=f"registry-prune-{i}", daemon=True) for i in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if failures:
        raise failures[0]
