"""The ``plan`` and ``prune`` report.

``deleted`` lists what a run deleted, or, for ``plan`` and ``--dry-run``, what
it would delete (``executed`` tells which). Every entry is
``{repository, tag, digest, reason, attachment, subject}``; ``tag`` is null for
an untagged child; ``attachment`` names the kind of a signature, attestation,
SBOM, referrers index or other referrer, and ``subject`` the digest it is
attached to (both null for images). ``rewritten`` lists kept referrers indexes
put back without the entries deleted; ``orphans`` every attachment whose
subject is gone, with its bytes and fate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from pipeline_step.execution.executor import Status, StepOutcome
from pipeline_step.operations.prune import PruneRun
from pipeline_step.planning.planner import Action, Orphan, Phase
from pipeline_step.reports.envelope import Report


@dataclass(frozen=True, slots=True)
class Entry:
    """One decision or outcome. A slotted dataclass, not a model: a big plan has 100,000 of them."""

    repository: str
    tag: str | None
    digest: str | None
    reason: str
    attachment: str | None = None  # signature, attestation, SBOM, referrers index, referrer; null for an image
    subject: str | None = None  # the digest an attachment is attached to


ENTRY_LISTS = ("deleted", "kept", "skipped", "failed", "not_attempted", "repaired", "rewritten")


class OrphanEntry(BaseModel):
    """An attachment whose subject no longer exists in its repository."""

    repository: str
    digest: str
    tags: list[str]
    kind: str
    subject: str
    action: Literal["delete", "keep"]
    reason: str
    bytes: int  # its manifest and the blobs it references (shared blobs included)

    @classmethod
    def of(cls, orphan: Orphan) -> OrphanEntry:
        return cls(
            repository=orphan.repository,
            digest=orphan.digest,
            tags=list(orphan.tags),
            kind=orphan.kind,
            subject=orphan.subject,
            action="delete" if orphan.action is Action.DELETE else "keep",
            reason=orphan.reason,
            bytes=orphan.bytes,
        )


class RepositorySummary(BaseModel):
    repository: str
    policy: dict[str, Any]
    tags: int  # every tag, attachments' included
    deleted: int  # the images' tags
    kept: int
    blocked: str | None = None
    attachments_deleted: int = 0
    attachments_kept: int = 0
    orphans: int = 0


class Summary(BaseModel):
    deleted: int = 0  # the images' tags; attachments are counted apart
    kept: int = 0
    skipped: int = 0
    failed: int = 0
    not_attempted: int = 0
    manifests_deleted: int = 0  # every manifest, attachments' included
    repaired: int = 0  # ghost tags removed (or, in a dry run, to remove)
    attachments_deleted: int = 0  # signatures, attestations, SBOMs, referrers indexes and other referrers
    attachments_kept: int = 0
    attachment_kinds: dict[str, int] = Field(default_factory=dict)  # kind -> attachments deleted
    indexes_rewritten: int = 0  # kept referrers indexes put back without a deleted entry
    orphans: int = 0
    orphans_deleted: int = 0


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
    rewritten: list[Entry] = Field(default_factory=list)  # kept referrers indexes, without the deleted entries
    orphans: list[OrphanEntry] = Field(default_factory=list)
    orphan_bytes: int | None = None  # what garbage collection could free if every orphan went

    STREAMED: ClassVar[tuple[str, ...]] = (*ENTRY_LISTS, "orphans")


def _entries_for(outcome: StepOutcome, reason: str) -> list[Entry]:
    step = outcome.step
    return [
        Entry(step.repository, tag, step.digest, reason, step.attachment, step.subject) for tag in step.tags or (None,)
    ]


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
        orphan_bytes=run.orphan_bytes,
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
                deleted=sum(1 for d in repo_plan.deletions if d.tag is not None and not d.attachment),
                kept=sum(1 for d in repo_plan.keeps if not d.attachment),
                blocked=repo_plan.blocked,
                attachments_deleted=sum(1 for step in repo_plan.deleting if step.attachment),
                attachments_kept=sum(repo_plan.attachments_kept.values()),
                orphans=len(repo_plan.orphans),
            )
        )
        report.orphans.extend(OrphanEntry.of(orphan) for orphan in repo_plan.orphans)
        if execution is None:
            report.rewritten.extend(
                Entry(step.repository, step.tags[0], step.digest, step.reason, step.attachment, step.subject)
                for step in repo_plan.steps
                if step.phase is Phase.REWRITE
            )
        for decision in repo_plan.decisions:
            entry = Entry(
                decision.repository,
                decision.tag,
                decision.digest,
                decision.reason,
                decision.attachment,
                decision.subject,
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
            if step_outcome.step.phase is Phase.REWRITE and status in (Status.DELETED, Status.ALREADY_GONE):
                report.rewritten.extend(_entries_for(step_outcome, reasons[key]))
            elif status is Status.DELETED:
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
    report.orphans.sort(key=lambda o: (o.repository, o.digest))
    report.conclude(outcome)
    return report
