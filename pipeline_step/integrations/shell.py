"""Run an operator-supplied shell command, streaming its output and keeping a tail.

Long garbage collections print for minutes; streaming each line (prefixed)
keeps the Jenkins console alive, and the captured text is parsed afterwards.
Every line passes through the redactor.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Callable

from pipeline_step.support.redact import redact

MAX_CAPTURE = 2 * 1024 * 1024  # keep at most this much output in memory (the end of it)


@dataclass(frozen=True, slots=True)
class CommandResult:
    command: str
    exit_code: int  # -1 when it timed out
    output: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def tail(self, lines: int = 8) -> str:
        return "\n".join(self.output.strip().splitlines()[-lines:])


def run_command(
    command: str,
    *,
    timeout: float,
    echo: Callable[[str], None] = lambda line: None,
) -> CommandResult:
    """Run ``command`` with /bin/sh; stdout and stderr merged, streamed to ``echo``."""
    started = time.monotonic()
    process = subprocess.Popen(
        ["/bin/sh", "-c", command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        errors="replace",
        start_new_session=True,  # so a timeout can kill the whole group (docker exec, ssh...)
    )
    captured: list[str] = []
    size = 0
    timed_out = threading.Event()

    def kill_on_timeout() -> None:
        timed_out.set()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    timer = threading.Timer(timeout, kill_on_timeout)
    timer.start()
    try:
        assert process.stdout is not None
        for line in process.stdout:
            clean = redact(line.rstrip("\n"))
            echo(clean)
            captured.append(clean)
            size += len(clean) + 1
            while size > MAX_CAPTURE and captured:
                size -= len(captured.pop(0)) + 1
        process.wait()
    finally:
        timer.cancel()
    code = -1 if timed_out.is_set() else process.returncode
    return CommandResult(redact(command), code, "\n".join(captured), time.monotonic() - started)
