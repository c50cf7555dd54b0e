"""Run reports: the JSON document every command can write with ``--json FILE``.

``deleted`` lists what a run deleted, or, for ``plan`` and ``--dry-run``, what
it would delete (``executed`` tells which). Every entry is
``{repository, tag, digest, reason}``; ``tag`` is null for an untagged child.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from pipeline_step import __version__, jsonout
from pipeline_step.errors import PruneError
from pipeline_step.execution.executor import ExecutionResult, Status, StepOutcome
from pipeline_step.planning.build import Plan
from pipeline_step.planning.planner import Action


@dataclass(frozen=True, slots=True)
class Entry:
    """One decision or outcome. A slotted dataclass, not a model: a big plan has 100,000 of them."""

    repository: str
    tag: str | None
    digest: str | None
    reason: str


ENTRY_LISTS = ("deleted", "kept", "skipped", "failed", "not_attempted")


class RepositorySummary(BaseModel):
    repository: str
    policy: dict[str, Any]
    tags: int
    deleted: int
    kept: int
    blocked: str | None = None


class Summary(BaseModel):
    deleted: int = 0
    kept: int = 0
    skipped: int = 0
    failed: int = 0
    not_attempted: int = 0
    manifests_deleted: int = 0


class RunReport(BaseModel):
    tool: str = "registry-prune"
    version: str = __version__
    command: str
    registry: str
    dry_run: bool
    executed: bool
    outcome: str  # planned | ok | partial | failed | interrupted
    exit_code: int = 0
    error: str | None = None
    started_at: datetime
    finished_at: datetime
    repositories: list[RepositorySummary] = Field(default_factory=list)
    deleted: list[Entry] = Field(default_factory=list)
    kept: list[Entry] = Field(default_factory=list)
    skipped: list[Entry] = Field(default_factory=list)
    failed: list[Entry] = Field(default_factory=list)
    not_attempted: list[Entry] = Field(default_factory=list)
    summary: Summary = Field(default_factory=Summary)
    predicted_reclaim_bytes: int | None = None
    requests: int | None = None
    notes: list[str] = Field(default_factory=list)

    def write(self, target: str | Path | None) -> None:
        """``--json`` output: a path (written atomically) or ``-`` for stdout; entries are streamed."""
        jsonout.write(self, target, streamed=ENTRY_LISTS)


def failure_report(*, command: str, registry: str, dry_run: bool, started_at: datetime, error: PruneError) -> RunReport:
    """The report of a run that failed before it could plan or execute anything."""
    return RunReport(
        command=command,
        registry=registry,
        dry_run=dry_run,
        executed=False,
        outcome="failed",
        exit_code=int(error.exit_code),
        error=str(error),
        started_at=started_at,
        finished_at=datetime.now(timezone.utc),
    )


def _entries_for(outcome: StepOutcome, reason: str) -> list[Entry]:
    step = outcome.step
    if not step.tags:
        return [Entry(repository=step.repository, tag=None, digest=step.digest, reason=reason)]
    return [Entry(repository=step.repository, tag=tag, digest=step.digest, reason=reason) for tag in step.tags]


def build_report(
    plan: Plan,
    *,
    command: str,
    dry_run: bool,
    started_at: datetime,
    execution: ExecutionResult | None = None,
    requests: int | None = None,
) -> RunReport:
    """Describe a plan, and what executing it did when ``execution`` is given."""
    report = RunReport(
        command=command,
        registry=plan.registry,
        dry_run=dry_run,
        executed=execution is not None,
        outcome="planned",
        started_at=started_at,
        finished_at=datetime.now(timezone.utc),
        predicted_reclaim_bytes=plan.reclaim.bytes if plan.reclaim else None,
        requests=requests,
    )
    for repo_plan in plan.repositories:
        deletions = repo_plan.deletions
        report.repositories.append(
            RepositorySummary(
                repository=repo_plan.repository,
                policy=repo_plan.policy.describe(),
                tags=sum(1 for d in repo_plan.decisions if d.tag is not None),
                deleted=sum(1 for d in deletions if d.tag is not None),
                kept=len(repo_plan.keeps),
                blocked=repo_plan.blocked,
            )
        )
        for decision in repo_plan.decisions:
            entry = Entry(
                repository=decision.repository, tag=decision.tag, digest=decision.digest, reason=decision.reason
            )
            if decision.action is Action.KEEP:
                report.kept.append(entry)
            elif execution is None:
                report.deleted.append(entry)

    if execution is not None:
        reasons = {(step.repository, step.digest): step.reason for p in plan.repositories for step in p.steps}
        for outcome in execution.outcomes:
            key = (outcome.step.repository, outcome.step.digest)
            if outcome.status in (Status.DELETED, Status.ALREADY_GONE):
                detail = reasons[key] if outcome.status is Status.DELETED else f"{reasons[key]}; {outcome.detail}"
                report.deleted.extend(_entries_for(outcome, detail))
            elif outcome.status is Status.SKIPPED:
                report.skipped.extend(_entries_for(outcome, outcome.detail))
            elif outcome.status is Status.FAILED:
                report.failed.extend(_entries_for(outcome, outcome.detail))
            else:
                report.not_attempted.extend(_entries_for(outcome, outcome.detail))
        report.summary.manifests_deleted = len(execution.by_status(Status.DELETED))
        if execution.interrupted:
            report.outcome = "interrupted"
        elif execution.fatal is not None:
            report.outcome = "failed"
        elif report.failed or any(r.blocked for r in plan.repositories):
            # A blocked repository was not pruned at all: an unattended job must not stay green.
            report.outcome = "partial"
        else:
            report.outcome = "ok"
        if execution.fatal is not None:
            report.error = str(execution.fatal)
    else:
        report.summary.manifests_deleted = plan.step_count

    for name in ENTRY_LISTS:
        entries: list[Entry] = getattr(report, name)
        entries.sort(key=lambda e: (e.repository, e.tag or "", e.digest or ""))
        setattr(report.summary, name, sum(1 for e in entries if e.tag is not None))
    return report
