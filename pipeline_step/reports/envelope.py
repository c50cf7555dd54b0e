"""The envelope every ``--json`` report shares, whatever the command.

``command, version, outcome, exit_code, message, started, finished, registry,
errors, notes``, then the command's own body. Every body field has a default,
so a run that fails before it learns anything still writes a valid report of
its command's type (:meth:`Report.failure`). The JSON Schema of all of them is
``docs/report-schema.json`` (see schema.py).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from pipeline_step import __version__
from pipeline_step.errors import PruneError
from pipeline_step.operations.outcome import Outcome
from pipeline_step.reports import jsonout

R = TypeVar("R", bound="Report")


def now() -> datetime:
    return datetime.now(timezone.utc)


class ErrorInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str  # the exception's class, e.g. RegistryUnreachableError
    message: str
    hint: str | None = None  # what the operator must do next
    exit_code: int

    @classmethod
    def of(cls, error: PruneError) -> ErrorInfo:
        return cls(kind=type(error).__name__, message=error.message, hint=error.hint, exit_code=int(error.exit_code))

    def line(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class Report(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command: str
    version: str = __version__
    outcome: str
    exit_code: int
    message: str
    started: datetime
    finished: datetime = Field(default_factory=now)
    registry: str | None = None
    errors: list[ErrorInfo] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)

    # List fields written an item per line, after everything else: they can hold 100,000 entries.
    STREAMED: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def failure(cls: type[R], command: str, outcome: Outcome, *, started: datetime, registry: str | None) -> R:
        """The report of a run that stopped before it had anything else to say."""
        return cls(
            command=command,
            outcome=outcome.name,
            exit_code=int(outcome.exit_code),
            message=outcome.message,
            started=started,
            registry=registry,
            errors=[ErrorInfo.of(error) for error in outcome.errors],
        )

    def conclude(self, outcome: Outcome) -> None:
        """Set the envelope from ``outcome``; ``finished`` is now."""
        self.outcome = outcome.name
        self.exit_code = int(outcome.exit_code)
        self.message = outcome.message
        self.errors = [ErrorInfo.of(error) for error in outcome.errors]
        self.finished = now()

    def write(self, target: str | Path | None) -> None:
        """``--json`` output: a path (written atomically) or ``-`` for stdout."""
        jsonout.write(self, target, streamed=self.STREAMED)
