"""``gc``: the registry's garbage collection as a library call, and its outcome.

The commands themselves (read-only, GC, restart) and their safe order live in
integrations/gc.py; this adds the registry lock's caller-side view: what was
predicted, what was measured, and how the run ended.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from pipeline_step.errors import ExitCode
from pipeline_step.integrations.disk import DiskProbe
from pipeline_step.integrations.gc import GcCommands, GcResult, run_gc
from pipeline_step.operations.outcome import Outcome
from pipeline_step.support.units import describe_freed, format_bytes, plural

UNDO_CLOSED = (
    "garbage collection closes the undo window: `restore` now brings back only the pruned images whose "
    "blobs another repository still shares, names every other one and exits 5"
)


@dataclass
class GcRun:
    result: GcResult
    predicted_bytes: int | None = None  # from a prune report, to compare with the measurement
    notes: list[str] = field(default_factory=list)

    def outcome(self) -> Outcome:
        result = self.result
        summary = result.summary
        counted = (
            f": {plural(summary.blobs_eligible, 'blob')} and {plural(summary.manifests_eligible, 'manifest')} deleted"
            if summary
            else ""
        )
        freed = ""
        if result.freed_bytes is not None:
            versus = f" (predicted {format_bytes(self.predicted_bytes)})" if self.predicted_bytes is not None else ""
            freed = f"; {describe_freed(result.freed_bytes)}{versus}"
        if result.interrupted and result.error is None:
            ran = "garbage collection ran to its end" if summary else "garbage collection did not start"
            restarted = "; the registry was restarted" if result.restarted else ""
            return Outcome("interrupted", ExitCode.INTERRUPTED, f"gc interrupted: {ran}{restarted}{counted}{freed}")
        if result.error is None:
            return Outcome("ok", ExitCode.OK, f"gc ok{counted}{freed}")
        return Outcome("failed", result.error.exit_code, f"gc FAILED{counted}{freed}: {result.error}", (result.error,))


def garbage_collect(
    commands: GcCommands,
    *,
    probe: DiskProbe | None = None,
    predicted_bytes: int | None = None,
    echo: Callable[[str], None] = lambda line: None,
    wait_healthy: Callable[[], None] | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> GcRun:
    result = run_gc(commands, probe=probe, echo=echo, wait_healthy=wait_healthy, stop=stop)
    run = GcRun(result, predicted_bytes, notes=list(result.warnings))
    if result.summary is not None:  # GC ran to its summary line
        run.notes.append(UNDO_CLOSED)
    return run
