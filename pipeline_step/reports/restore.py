"""The ``restore`` report: one entry per tag (or per untagged manifest), filed by what happened to it."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from pipeline_step.operations.restore import RestoreResult
from pipeline_step.reports.envelope import Report


class RestoreEntry(BaseModel):
    repository: str
    tag: str | None  # None for an untagged child manifest
    digest: str
    status: str
    detail: str = ""
    missing: list[str] = Field(default_factory=list)  # blobs or child manifests that are gone


class RestoreReport(Report):
    command: Literal["restore"] = "restore"
    audit_file: str | None = None
    dry_run: bool = False
    restored: list[RestoreEntry] = Field(default_factory=list)
    present: list[RestoreEntry] = Field(default_factory=list)
    unrestorable: list[RestoreEntry] = Field(default_factory=list)
    conflicts: list[RestoreEntry] = Field(default_factory=list)
    failed: list[RestoreEntry] = Field(default_factory=list)
    not_attempted: list[RestoreEntry] = Field(default_factory=list)


def build_restore_report(result: RestoreResult, *, audit_file: str, started: datetime) -> RestoreReport:
    outcome = result.outcome()
    report = RestoreReport(
        outcome=outcome.name,
        exit_code=int(outcome.exit_code),
        message=outcome.message,
        started=started,
        registry=result.registry,
        audit_file=audit_file,
        dry_run=result.dry_run,
        notes=result.notes(),
    )
    for row in result.rows():
        entry = RestoreEntry(
            repository=row.repository,
            tag=row.tag,
            digest=row.digest,
            status=row.status,
            detail=row.detail,
            missing=list(row.missing),
        )
        getattr(report, row.section).append(entry)
    report.conclude(outcome)
    return report
