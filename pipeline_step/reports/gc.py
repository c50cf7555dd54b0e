"""The ``gc`` report, and the GC section every report that runs GC shares."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from pipeline_step.integrations.gc import GcResult
from pipeline_step.reports.envelope import Report


class CommandReport(BaseModel):
    command: str
    exit_code: int
    seconds: float


class GcSection(BaseModel):
    commands: list[CommandReport] = Field(default_factory=list)
    ok: bool
    blobs_marked: int | None = None
    blobs_deleted: int | None = None
    manifests_deleted: int | None = None
    free_bytes_before: int | None = None
    free_bytes_after: int | None = None
    freed_bytes: int | None = None
    warnings: list[str] = Field(default_factory=list)
    error: str | None = None


def gc_section(result: GcResult) -> GcSection:
    summary = result.summary
    return GcSection(
        commands=[
            CommandReport(command=s.command, exit_code=s.exit_code, seconds=round(s.seconds, 3)) for s in result.steps
        ],
        ok=result.ok,
        blobs_marked=summary.blobs_marked if summary else None,
        blobs_deleted=summary.blobs_eligible if summary else None,
        manifests_deleted=summary.manifests_eligible if summary else None,
        free_bytes_before=result.before.free_bytes if result.before else None,
        free_bytes_after=result.after.free_bytes if result.after else None,
        freed_bytes=result.freed_bytes,
        warnings=result.warnings,
        error=str(result.error) if result.error else None,
    )


class SlackDelivery(BaseModel):
    delivered: bool
    destination: str
    warning: str | None = None


class GcReport(Report):
    command: Literal["gc"] = "gc"
    predicted_reclaim_bytes: int | None = None
    gc: GcSection | None = None
    slack: SlackDelivery | None = None
