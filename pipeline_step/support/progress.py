"""Progress for long runs: a bar on a terminal, periodic plain lines elsewhere.

Jenkins' console is not a TTY, so there we print a line every few seconds
(``resolve team/app: 1200/2000 (60%)``) instead of redrawing a bar.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Callable, Protocol, TextIO


class Progress(Protocol):
    def advance(self, count: int = 1) -> None: ...

    def close(self) -> None: ...


ProgressFactory = Callable[[str, int], Progress]


class NullProgress:
    def advance(self, count: int = 1) -> None:
        return None

    def close(self) -> None:
        return None


def null_progress(label: str, total: int) -> Progress:
    return NullProgress()


class StreamProgress:
    """Thread-safe progress on ``stream``; quiet for small totals."""

    def __init__(
        self,
        label: str,
        total: int,
        *,
        stream: TextIO,
        tty: bool,
        interval: float = 5.0,
        min_total: int = 50,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self._stream = stream
        self._tty = tty
        self._interval = 0.1 if tty else interval
        self._enabled = total >= min_total
        self._clock = clock
        self._started = clock()
        self._last = self._started
        self._lock = threading.Lock()

    def advance(self, count: int = 1) -> None:
        with self._lock:
            self.done += count
            now = self._clock()
            if not self._enabled or now - self._last < self._interval:
                return
            self._last = now
            self._emit(final=False)

    def close(self) -> None:
        with self._lock:
            if self._enabled:
                self._emit(final=True)

    def _emit(self, *, final: bool) -> None:
        percent = 100 * self.done // self.total if self.total else 100
        elapsed = self._clock() - self._started
        if self._tty:
            width = 30
            filled = width * self.done // self.total if self.total else width
            bar = "#" * filled + "." * (width - filled)
            end = "\n" if final else ""
            self._stream.write(f"\r{self.label} [{bar}] {self.done}/{self.total} {percent}% {elapsed:.0f}s{end}")
        else:
            self._stream.write(f"{self.label}: {self.done}/{self.total} ({percent}%) after {elapsed:.0f}s\n")
        self._stream.flush()


def stream_progress(stream: TextIO | None = None, *, interval: float = 5.0) -> ProgressFactory:
    target = stream or sys.stderr
    tty = target.isatty()

    def factory(label: str, total: int) -> Progress:
        return StreamProgress(label, total, stream=target, tty=tty, interval=interval)

    return factory
