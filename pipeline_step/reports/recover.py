"""The ``recover`` report, and the Slack summary built from the same facts."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, Field

from pipeline_step.execution.executor import Status
from pipeline_step.integrations.slack import BuildContext, RecoverySummary
from pipeline_step.operations.recover import Recovery
from pipeline_step.planning.planner import Phase
from pipeline_step.registry.artifacts import plural
from pipeline_step.reports.envelope import Report
from pipeline_step.reports.gc import GcSection, gc_section
from pipeline_step.reports.prune import Entry, Summary


class ClassificationReport(BaseModel):
    category: str
    explanation: str
    evidence: str | None = None


class RoundReport(BaseModel):
    keep_cap: int | None
    planned_manifests: int
    deleted_tags: int
    predicted_reclaim_bytes: int | None
    free_bytes_after: int | None
    gc: GcSection | None = None


class PushAttemptReport(BaseModel):
    number: int
    exit_code: int
    seconds: float
    category: str


class PushReport(BaseModel):
    attempts: list[PushAttemptReport]
    succeeded: bool
    verified: bool | None = None
    checked_blobs: int | None = None
    problems: list[str] = Field(default_factory=list)
    gave_up: str | None = None


class SlackReport(BaseModel):
    delivered: bool
    destination: str
    warning: str | None = None


class RecoveryReport(Report):
    command: Literal["recover"] = "recover"
    repositories: list[str] = Field(default_factory=list)
    dry_run: bool = False
    trigger: str | None = None
    classification: ClassificationReport | None = None
    disk_probe: str | None = None
    total_bytes: int | None = None
    free_bytes_before: int | None = None
    free_bytes_after: int | None = None  # after pruning and garbage collection
    freed_bytes: int | None = None  # measured: free after minus free before
    free_bytes_final: int | None = None  # at the end, after the push
    predicted_reclaim_bytes: int | None = None  # what the plans said GC would free
    summary: Summary = Field(default_factory=Summary)  # tags deleted (or, in a dry run, to delete), as prune counts
    rounds: list[RoundReport] = Field(default_factory=list)
    gc_ran: bool = False  # GC ran to its end: the undo window is closed
    audit_log: str | None = None
    push_attempts: int = 0
    push_succeeded: bool | None = None
    push: PushReport | None = None
    slack: SlackReport | None = None
    deleted: list[Entry] = Field(default_factory=list)
    skipped: list[Entry] = Field(default_factory=list)
    failed: list[Entry] = Field(default_factory=list)

    STREAMED: ClassVar[tuple[str, ...]] = ("deleted", "skipped", "failed")


def _entries(recovery: Recovery, statuses: tuple[Status, ...]) -> list[Entry]:
    entries: list[Entry] = []
    for round_ in recovery.rounds:
        if round_.execution is None:
            if Status.DELETED in statuses and recovery.dry_run:
                entries.extend(
                    Entry(repository=r, tag=t, digest=d, reason="planned (dry run)") for r, t, d in round_.deleted_tags
                )
            continue
        for outcome in round_.execution.outcomes:
            if outcome.status in statuses and outcome.step.phase is not Phase.REWRITE:
                step = outcome.step
                reason = step.reason if outcome.status is Status.DELETED else outcome.detail
                entries.extend(
                    Entry(step.repository, tag, step.digest, reason, step.attachment, step.subject)
                    for tag in (step.tags or (None,))
                )
    return entries


def build_recovery_report(recovery: Recovery, *, audit_log: str | None = None) -> RecoveryReport:
    outcome = recovery.outcome()
    before, after = recovery.disk_before, recovery.disk_after
    found = recovery.classification
    repositories = sorted({p.repository for r in recovery.rounds for p in r.plan.repositories})
    report = RecoveryReport(
        registry=recovery.registry,
        repositories=repositories,
        dry_run=recovery.dry_run,
        outcome=outcome.name,
        exit_code=int(outcome.exit_code),
        message=outcome.message,
        trigger=recovery.trigger,
        classification=ClassificationReport(
            category=found.category.value, explanation=found.explanation, evidence=found.evidence
        )
        if found
        else None,
        started=recovery.started_at,
        disk_probe=before.source if before else None,
        total_bytes=before.total_bytes if before else None,
        free_bytes_before=before.free_bytes if before else None,
        free_bytes_after=after.free_bytes if after else None,
        freed_bytes=after.free_bytes - before.free_bytes if before and after else None,
        free_bytes_final=recovery.disk_final.free_bytes if recovery.disk_final else None,
        predicted_reclaim_bytes=recovery.predicted_bytes if recovery.rounds else None,
        deleted=_entries(recovery, (Status.DELETED, Status.ALREADY_GONE, Status.UNTAGGED, Status.TAGS_DELETED)),
        skipped=_entries(recovery, (Status.SKIPPED,)),
        failed=_entries(recovery, (Status.FAILED, Status.NOT_ATTEMPTED)),
        gc_ran=recovery.gc_ran,
        audit_log=audit_log,
        notes=list(recovery.notes),
    )
    attached = recovery.attachments_deleted
    report.summary = Summary(
        deleted=sum(1 for entry in report.deleted if entry.tag is not None and entry.attachment is None),
        attachments_deleted=sum(attached.values()),
        attachment_kinds=attached,
        skipped=sum(1 for entry in report.skipped if entry.tag is not None),
        failed=sum(1 for entry in report.failed if entry.tag is not None),
        manifests_deleted=sum(
            len(r.execution.by_status(Status.DELETED)) if r.execution else r.plan.step_count * recovery.dry_run
            for r in recovery.rounds
        ),
    )
    for round_ in recovery.rounds:
        report.rounds.append(
            RoundReport(
                keep_cap=round_.keep_cap,
                planned_manifests=round_.plan.step_count,
                deleted_tags=len(round_.deleted_tags),
                predicted_reclaim_bytes=round_.plan.reclaim.bytes if round_.plan.reclaim else None,
                free_bytes_after=round_.free_after.free_bytes if round_.free_after else None,
                gc=gc_section(round_.gc) if round_.gc is not None else None,
            )
        )
    push = recovery.push
    if push is not None:
        report.push_attempts = len(push.attempts)
        report.push_succeeded = push.succeeded and (push.verify is None or push.verify.ok)
        report.push = PushReport(
            attempts=[
                PushAttemptReport(
                    number=a.number, exit_code=a.exit_code, seconds=round(a.seconds, 3), category=a.category
                )
                for a in push.attempts
            ],
            succeeded=push.succeeded,
            verified=push.verify.ok if push.verify else None,
            checked_blobs=push.verify.checked_blobs if push.verify else None,
            problems=push.verify.problems if push.verify else [],
            gave_up=push.gave_up,
        )
    report.conclude(outcome)
    return report


def slack_summary(report: RecoveryReport, build: BuildContext | None = None) -> RecoverySummary:
    deleted = [f"{e.repository}:{e.tag}" for e in report.deleted if e.tag is not None and e.attachment is None]
    return RecoverySummary(
        outcome=report.message,
        success=report.exit_code == 0,
        trigger=report.trigger,
        registry=report.registry,
        repositories=report.repositories,
        deleted_tags=deleted,
        deleted_attachments={plural(kind, 2): n for kind, n in report.summary.attachment_kinds.items()},
        bytes_freed=report.freed_bytes,
        bytes_predicted=report.predicted_reclaim_bytes,
        push_attempted=report.push is not None,
        push_succeeded=report.push_succeeded,
        push_attempts=report.push_attempts,
        dry_run=report.dry_run,
        gc_ran=report.gc_ran,
        build=build or BuildContext.from_env(),
        error="; ".join(error.line() for error in report.errors) or None,
    )
