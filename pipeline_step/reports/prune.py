"""The ``plan`` and ``prune`` report.

``deleted`` lists what a run deleted, or, for ``plan`` and ``--dry-run``, what
it would delete (``executed`` tells which). Every entry is
``{repository, tag, digest, reason}``; ``tag`` is null for an untagged child.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from pipeline_step.execution.executor import Status, StepOutcome
from pipeline_step.operations.prune import PruneRun
from pipeline_step.planning.planner import Action
from pipeline_step.reports.envelope import Report


@dataclass(frozen=True, slots=True)
class Entry:
    """One decision or outcome. A slotted dataclass, not a model: a big plan has 100,000 of them."""

    repository: str
    tag: str | None
    digest: str | None
    reason: str


ENTRY_LISTS = ("deleted", "kept", "skipped", "failed", "not_attempted", "repaired")


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
    repaired: int = 0  # ghost tags removed (or, in a dry run, to remove)


class PruneReport(Report):
    command: Literal["plan", "prune"] = "prune"
    dry_run: bool = False
    executed: bool = False
    backend: str | None = None  # api | filesystem
    registry_line: str | None = None  # 2.8 | 3.x | unknown, from the registry's answers; None in direct mode
    audit_log: str | None = None  # the undo log of this run, when it deleted anything
    repositories: list[RepositorySummary] = Field(default_factory=list)
    summary: Summary = Field(default_factory=Summary)
    predicted_reclaim_bytes: int | None = None
    requests: int | None = None
    deleted: list[Entry] = Field(default_factory=list)
    kept: list[Entry] = Field(default_factory=list)
    skipped: list[Entry] = Field(default_factory=list)
    failed: list[Entry] = Field(default_factory=list)
    not_attempted: list[Entry] = Field(default_factory=list)
    repaired: list[Entry] = Field(default_factory=list)  # ghost tags: listed without a link, removed

    STREAMED: ClassVar[tuple[str, ...]] = ENTRY_LISTS


def _entries_for(outcome: StepOutcome, reason: str) -> list[Entry]:
    step = outcome.step
    if not step.tags:
        return [Entry(repository=step.repository, tag=None, digest=step.digest, reason=reason)]
    return [Entry(repository=step.repository, tag=tag, digest=step.digest, reason=reason) for tag in step.tags]


def build_prune_report(
    run: PruneRun, *, backend: str | None = None, audit_log: str | None = None, requests: int | None = None
) -> PruneReport:
    """Describe a plan, and what executing it did when it was executed."""
    plan, execution = run.plan, run.execution
    outcome = run.outcome()
    tally = run.tally()
    report = PruneReport(
        command=run.command,  # type: ignore[arg-type]
        outcome=outcome.name,
        exit_code=int(outcome.exit_code),
        message=outcome.message,
        started=run.started,
        registry=plan.registry,
        dry_run=run.dry_run,
        executed=execution is not None,
        backend=backend,
        registry_line=run.registry_line.name if run.registry_line else None,
        audit_log=audit_log,
        predicted_reclaim_bytes=plan.reclaim.bytes if plan.reclaim else None,
        requests=requests,
        notes=list(run.notes),
        summary=Summary(**{name: getattr(tally, name) for name in Summary.model_fields}),
    )
    repaired = set(execution.repaired) if execution is not None else set()
    for repo_plan in plan.repositories:
        report.repositories.append(
            RepositorySummary(
                repository=repo_plan.repository,
                policy=repo_plan.policy.describe(),
                tags=sum(1 for d in repo_plan.decisions if d.tag is not None),
                deleted=sum(1 for d in repo_plan.deletions if d.tag is not None),
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
            elif decision.action is Action.REPAIR:
                if execution is None or (decision.repository, decision.tag) in repaired:
                    report.repaired.append(entry)
            elif execution is None:
                report.deleted.append(entry)
    if execution is not None:
        reasons = {(step.repository, step.digest): step.reason for p in plan.repositories for step in p.steps}
        for step_outcome in execution.outcomes:
            key = (step_outcome.step.repository, step_outcome.step.digest)
            status = step_outcome.status
            if status is Status.DELETED:
                report.deleted.extend(_entries_for(step_outcome, reasons[key]))
            elif status in (Status.ALREADY_GONE, Status.UNTAGGED, Status.TAGS_DELETED):
                report.deleted.extend(_entries_for(step_outcome, f"{reasons[key]}; {step_outcome.detail}"))
            elif status is Status.SKIPPED:
                report.skipped.extend(_entries_for(step_outcome, step_outcome.detail))
            elif status is Status.FAILED:
                report.failed.extend(_entries_for(step_outcome, step_outcome.detail))
            elif status is Status.MANIFEST_FAILED:
                # Its tags are gone (deleted); the manifest itself failed (an untagged entry).
                report.deleted.extend(_entries_for(step_outcome, f"{reasons[key]}; {step_outcome.detail}"))
                report.failed.append(
                    Entry(step_outcome.step.repository, None, step_outcome.step.digest, step_outcome.detail)
                )
            else:
                report.not_attempted.extend(_entries_for(step_outcome, step_outcome.detail))
    for name in ENTRY_LISTS:
        entries: list[Entry] = getattr(report, name)
        entries.sort(key=lambda e: (e.repository, e.tag or "", e.digest or ""))
    report.conclude(outcome)
    return report
