"""The ``usage`` report."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import Field

from pipeline_step.operations.usage import RepositoryUsage, Schema1Tag, Usage
from pipeline_step.planning.reclaim import PendingGarbage
from pipeline_step.reports.envelope import Report
from pipeline_step.reports.prune import OrphanEntry


class UsageReport(Report):
    command: Literal["usage"] = "usage"
    generated_at: datetime | None = None
    policy_scope: list[str] = Field(default_factory=list)  # the --repo patterns the policy applied to
    repositories: list[RepositoryUsage] = Field(default_factory=list)
    tags: int = 0
    manifests: int = 0
    referenced_bytes: int = 0  # each blob once across the whole registry
    reclaimable_bytes: int = 0  # each blob once; can be less than the sum of the rows
    reclaimable_blobs: int = 0
    waiting_for_gc: PendingGarbage | None = None  # unreferenced blobs the next GC frees, before any prune
    exact: bool = False  # True in direct mode, where untagged revisions are seen too
    # Tags naming schema1 manifests: registry 3.x cannot read them, and its garbage collection stops at one.
    schema1: list[Schema1Tag] = Field(default_factory=list)
    attachments: int = 0  # signatures, attestations, SBOMs and referrers, apart from the images
    orphan_bytes: int = 0  # what GC could free if every orphan went, each blob once
    # Attachments whose subject is gone, in the repositories the policy applies to.
    orphans: list[OrphanEntry] = Field(default_factory=list)

    STREAMED: ClassVar[tuple[str, ...]] = ("orphans",)


def build_usage_report(usage: Usage, *, registry: str, started: datetime) -> UsageReport:
    outcome = usage.outcome()
    report = UsageReport(
        outcome=outcome.name,
        exit_code=int(outcome.exit_code),
        message=outcome.message,
        started=started,
        registry=registry,
        generated_at=usage.generated_at,
        policy_scope=usage.policy_scope,
        repositories=usage.repositories,
        tags=usage.tags,
        manifests=usage.manifests,
        referenced_bytes=usage.referenced_bytes,
        reclaimable_bytes=usage.reclaimable_bytes,
        reclaimable_blobs=usage.reclaimable_blobs,
        waiting_for_gc=usage.waiting_for_gc,
        exact=usage.exact,
        schema1=usage.schema1,
        attachments=usage.attachments,
        orphan_bytes=usage.orphan_bytes,
    )
    for repo_plan in usage.plan.repositories if usage.plan is not None else ():
        report.orphans.extend(OrphanEntry.of(orphan) for orphan in repo_plan.orphans)
    report.conclude(outcome)
    return report
