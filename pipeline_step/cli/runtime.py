"""Process-level concerns: logging, signals and progress output."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from dataclasses import dataclass, field
from types import FrameType

from pipeline_step.support.progress import ProgressFactory, null_progress, stream_progress
from pipeline_step.support.redact import RedactingFilter


@dataclass
class Runtime:
    """Shared by every command: the stop event that SIGINT/SIGTERM set."""

    stop: threading.Event = field(default_factory=threading.Event)
    verbosity: int = 0

    def progress(self, args: argparse.Namespace) -> ProgressFactory:
        if getattr(args, "no_progress", False) or self.verbosity < 0:
            return null_progress
        return stream_progress(sys.stderr)

    def install_signal_handlers(self) -> None:
        """First SIGINT/SIGTERM: finish in-flight requests, then stop. Second SIGINT: abort."""

        def handler(signum: int, frame: FrameType | None) -> None:
            if self.stop.is_set() and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.stop.set()
            name = signal.Signals(signum).name
            sys.stderr.write(f"registry-prune: {name} received; finishing in-flight requests, then stopping\n")
            sys.stderr.flush()

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, handler)
            signal.signal(signal.SIGTERM, handler)


def configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    if verbosity < 0:
        level = logging.ERROR
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("registry-prune: %(levelname)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger("pipeline_step")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    # httpx logs every request at INFO, URLs included; keep it quiet.
    logging.getLogger("httpx").setLevel(logging.WARNING)
