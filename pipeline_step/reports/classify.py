"""The ``classify`` report."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipeline_step.reports.envelope import Report


class ClassifyReport(Report):
    command: Literal["classify"] = "classify"
    source: str | None = None  # "stdin", "file:PATH" or "jenkins:JOB#N"
    category: str | None = None
    prune_can_help: bool | None = None
    evidence: str | None = None
    line: int | None = None
    explanation: str | None = None
    also_seen: list[str] = Field(default_factory=list)
    lines_scanned: int = 0
