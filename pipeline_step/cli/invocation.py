"""One command run and its report: written on every exit path, success or not.

A command gets its :class:`Invocation` from ``main``, learns the registry as
soon as it can, and ends with :meth:`Invocation.finish`. Should it stop on an
error, SIGTERM or a bug instead, ``main`` calls :meth:`Invocation.fail`, which
writes a report of the command's own type (envelope filled, body empty) and
runs the same hooks (recover's Slack message, the build description).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Generic, TypeVar

from pipeline_step.operations.outcome import Outcome
from pipeline_step.reports.envelope import Report, now

R = TypeVar("R", bound=Report)


@dataclass
class Invocation(Generic[R]):
    command: str
    report_type: type[R]
    json_target: str | None = None
    started: datetime = field(default_factory=now)
    registry: str | None = None
    # Run on the final report, before it is written: they may add to it (recover's Slack result).
    hooks: list[Callable[[R], None]] = field(default_factory=list)
    written: bool = False

    def finish(self, report: R, render: Callable[[R], None] | None = None) -> int:
        """Run the hooks, print (``render``), write the ``--json`` report; the exit code."""
        self.written = True  # even if writing fails below: never write a second, failure report over it
        for hook in self.hooks:
            hook(report)
        if render is not None:
            render(report)
        report.write(self.json_target)
        return report.exit_code

    def fail(self, outcome: Outcome) -> int:
        report = self.report_type.failure(self.command, outcome, started=self.started, registry=self.registry)
        return self.finish(report)
