"""How a command ended: its outcome's name, exit code and one-line message.

Each operation works its outcome out once, from the facts it gathered, and
every report, summary line, Slack message and exit code is read from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline_step.errors import ExitCode, InterruptedRunError, LockBusyError, PruneError


@dataclass(frozen=True)
class Outcome:
    name: str  # a word from the command's own vocabulary: ok, partial, recovered, ...
    exit_code: ExitCode
    message: str
    errors: tuple[PruneError, ...] = ()

    @classmethod
    def of_error(cls, error: PruneError) -> Outcome:
        """The outcome of a run stopped by ``error`` before it could work one out itself."""
        if isinstance(error, InterruptedRunError):
            name = "interrupted"
        elif isinstance(error, LockBusyError):
            name = "locked"
        else:
            name = "failed"
        return cls(name, error.exit_code, str(error), (error,))

    @classmethod
    def internal_error(cls, exc: BaseException) -> Outcome:
        return cls(
            "failed",
            ExitCode.FAILURE,
            f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for a traceback and report it)",
        )
