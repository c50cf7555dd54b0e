"""Human output: decision tables and summaries; JSON report writing."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from pipeline_step.policy.versions import version_key
from pipeline_step.redact import redact
from pipeline_step.registry.digest import short
from pipeline_step.report import Entry, RunReport
from pipeline_step.units import format_bytes

MAX_TABLE_ROWS = 2000  # beyond this, kept tags are summarised; --json has them all


def _tag_order(entry: Entry) -> tuple[object, ...]:
    key = version_key(entry.tag) if entry.tag else None
    return (entry.repository, key is None, key or (), entry.tag or "", entry.digest or "")


def _rows(report: RunReport) -> list[tuple[str, Entry]]:
    rows: list[tuple[str, Entry]] = []
    deleted_label = "deleted" if report.executed else "delete"
    for label, entries in (
        (deleted_label, report.deleted),
        ("FAILED", report.failed),
        ("skipped", report.skipped),
        ("not-done", report.not_attempted),
    ):
        rows.extend((label, entry) for entry in entries)
    kept = [("keep", entry) for entry in report.kept]
    if len(rows) + len(kept) <= MAX_TABLE_ROWS:
        rows.extend(kept)
    rows.sort(key=lambda row: _tag_order(row[1]))
    return rows


def print_table(report: RunReport, stream: TextIO = sys.stdout) -> None:
    rows = _rows(report)
    if not rows:
        return
    table = [("REPOSITORY", "TAG", "DIGEST", "ACTION", "REASON")]
    for action, entry in rows:
        table.append(
            (
                entry.repository,
                entry.tag or "(untagged)",
                short(entry.digest) if entry.digest else "-",
                action,
                entry.reason,
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    for row in table:
        line = "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4]
        stream.write(redact(line.rstrip()) + "\n")
    if len(report.kept) and not any(a == "keep" for a, _ in rows):
        stream.write(f"({len(report.kept)} kept tags not listed; --json FILE has every decision)\n")


def summary_line(report: RunReport) -> str:
    s = report.summary
    repos = len(report.repositories)
    where = f"in {repos} repositor{'y' if repos == 1 else 'ies'}"
    predicted = (
        f"; garbage collection would free about {format_bytes(report.predicted_reclaim_bytes)}"
        if report.predicted_reclaim_bytes is not None
        else ""
    )
    if not report.executed:
        mode = "plan" if report.command == "plan" else "dry run"
        return (
            f"{mode}: {s.deleted} tags to delete ({s.manifests_deleted} manifests), {s.kept} kept "
            f"{where}{predicted}. Nothing was changed."
        )
    parts = [f"deleted {s.deleted} tags ({s.manifests_deleted} manifests)", f"kept {s.kept}"]
    if s.skipped:
        parts.append(f"skipped {s.skipped}")
    if s.failed:
        parts.append(f"FAILED {s.failed}")
    if s.not_attempted:
        parts.append(f"not attempted {s.not_attempted}")
    text = f"prune {report.outcome}: " + ", ".join(parts) + f" {where}{predicted}."
    if s.manifests_deleted:
        text += " Run garbage collection to free the disk space (registry-prune gc)."
    return text


def write_json(report: RunReport, target: str | None, stdout: TextIO = sys.stdout) -> None:
    if not target:
        return
    if target == "-":
        stdout.write(redact(report.model_dump_json(indent=2)) + "\n")
    else:
        report.write(Path(target))
