"""The prune flow as a library call: plan, then (unless dry-run) execute.

``plan``, ``prune`` and ``prune --dry-run`` all run the same collection and
planning code; only the execution step differs.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from pipeline_step.errors import ExitCode
from pipeline_step.execution.executor import AuditSink, Deleter, ExecutionResult, Executor, StepOutcome
from pipeline_step.planning.build import InventorySource, Plan, build_plan
from pipeline_step.policy.config import Configuration
from pipeline_step.progress import ProgressFactory, null_progress
from pipeline_step.report import RunReport, build_report


@dataclass
class PruneRun:
    plan: Plan
    execution: ExecutionResult | None
    report: RunReport

    def exit_code(self) -> ExitCode:
        """0, or why not: interrupted, the fatal error's code, or partial (failures, blocked repositories)."""
        execution = self.execution
        if execution is None:
            return ExitCode.OK
        if execution.interrupted:
            return ExitCode.INTERRUPTED
        if execution.fatal is not None:
            return execution.fatal.exit_code
        if self.report.outcome == "partial":
            return ExitCode.PARTIAL
        return ExitCode.OK


def prune(
    source: InventorySource,
    deleter: Deleter,
    configuration: Configuration,
    *,
    registry: str,
    dry_run: bool,
    command: str = "prune",
    repositories: list[str] | None = None,
    progress: ProgressFactory = null_progress,
    stop: threading.Event | None = None,
    audit: AuditSink | None = None,
    requests: Callable[[], int] | None = None,
) -> PruneRun:
    started = datetime.now(timezone.utc)
    stop = stop or threading.Event()
    plan = build_plan(source, configuration, registry=registry, repositories=repositories, progress=progress, stop=stop)
    execution: ExecutionResult | None = None
    if not dry_run and plan.step_count:
        bar = progress("delete", plan.step_count)

        def advance(_: StepOutcome) -> None:
            bar.advance()

        executor = Executor(
            deleter, concurrency=configuration.settings.concurrency, stop=stop, audit=audit, on_step=advance
        )
        try:
            execution = executor.run(plan.pairs())
        finally:
            bar.close()
    elif not dry_run:
        execution = ExecutionResult()
    report = build_report(
        plan,
        command=command,
        dry_run=dry_run,
        started_at=started,
        execution=execution,
        requests=requests() if requests else None,
    )
    return PruneRun(plan, execution, report)
