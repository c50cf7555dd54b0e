"""Human output of plan and prune: the decision table."""

from __future__ import annotations

import sys
from typing import TextIO

from pipeline_step.policy.versions import version_key
from pipeline_step.registry.digest import short
from pipeline_step.reports.prune import Entry, PruneReport
from pipeline_step.support.redact import redact

MAX_TABLE_ROWS = 2000  # beyond this, kept tags are left out; beyond it still, one row per repository

_HEADER = ("REPOSITORY", "TAG", "DIGEST", "ACTION", "REASON")


def _tag_order(entry: Entry) -> tuple[object, ...]:
    key = version_key(entry.tag) if entry.tag else None
    return (entry.repository, key is None, key or (), entry.tag or "", entry.digest or "")


def _rows(report: PruneReport) -> list[tuple[str, Entry]] | None:
    """Every row to print in version order, or None when there are too many to be read in a console."""
    deleted_label = "deleted" if report.executed else "delete"
    groups = (
        (deleted_label, report.deleted),
        ("FAILED", report.failed),
        ("skipped", report.skipped),
        ("not-done", report.not_attempted),
        ("rewritten" if report.executed else "rewrite", report.rewritten),
    )
    count = sum(len(entries) for _, entries in groups)
    if count > MAX_TABLE_ROWS:
        return None
    rows = [(label, entry) for label, entries in groups for entry in entries]
    if count + len(report.kept) <= MAX_TABLE_ROWS:
        rows.extend(("keep", entry) for entry in report.kept)
    rows.sort(key=lambda row: _tag_order(row[1]))
    return rows


def _cells(action: str, entry: Entry) -> tuple[str, str, str, str, str]:
    digest = short(entry.digest) if entry.digest else "-"
    untagged = f"(untagged {entry.attachment})" if entry.attachment else "(untagged)"
    return (entry.repository, entry.tag or untagged, digest, action, entry.reason)


def _write_rows(rows: list[tuple[str, str, str, str, str]], stream: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        line = "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4]
        stream.write(redact(line.rstrip()) + "\n")


def print_table(report: PruneReport, stream: TextIO | None = None) -> None:
    stream = stream or sys.stdout
    rows = _rows(report)
    if rows is None:
        # 100,000 lines help nobody in a console, and building them costs memory: one row per repository.
        summary = [("REPOSITORY", "TAGS", "DELETE", "KEEP", "NOTE")]
        summary.extend(
            (r.repository, str(r.tags), str(r.deleted), str(r.kept), r.blocked or "") for r in report.repositories
        )
        _write_rows(summary, stream)
        stream.write("(too many decisions to list; --json FILE has every one with its reason)\n")
        return
    if not rows:
        return
    _write_rows([_HEADER, *(_cells(action, entry) for action, entry in rows)], stream)
    if report.kept and not any(action == "keep" for action, _ in rows):
        stream.write(f"({len(report.kept)} kept tags not listed; --json FILE has every decision)\n")
