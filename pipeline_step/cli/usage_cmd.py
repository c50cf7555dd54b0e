"""``registry-prune usage``: where the space goes, and what a policy would reclaim."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from pipeline_step.backends.base import CountsPendingGarbage
from pipeline_step.cli import options, targets
from pipeline_step.cli.invocation import Invocation
from pipeline_step.cli.parser import Parser, Subcommands, add_command
from pipeline_step.cli.runtime import Runtime
from pipeline_step.errors import UsageError
from pipeline_step.execution.audit import default_audit_dir
from pipeline_step.operations.usage import measure_usage
from pipeline_step.reports.usage import UsageReport, build_usage_report
from pipeline_step.support.redact import redact
from pipeline_step.support.units import format_bytes, plural

REPORT = UsageReport


def register(commands: Subcommands[Parser]) -> None:
    parser = add_command(
        commands,
        "usage",
        description="Scan every repository of the catalog. Per repository and in total: tags, distinct "
        "manifests, bytes referenced (each blob counted once), and the bytes garbage collection would free "
        "after pruning under the policy (blobs referenced only by manifests the plan deletes, checked "
        "against every repository). The policy applies to --repo (default: every repository). Also the bytes "
        "already waiting for garbage collection (blobs no manifest references, e.g. after a prune): exact with "
        "--storage-root; through the API, which lists no blobs, at least what the undo logs in --audit-dir "
        "recorded as pruned and the registry still stores.",
    )
    options.add_registry_options(parser)
    options.add_policy_options(parser)
    group = parser.add_argument_group("output")
    group.add_argument("--json", metavar="FILE", help="write the usage report as JSON to FILE (- for stdout)")
    group.add_argument("--top", type=int, metavar="N", help="show only the N repositories with the most to reclaim")
    group.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    group.add_argument(
        "--upgrade-check",
        action="store_true",
        help="exit 8 while any tag names a schema1 manifest, which registry 3.x cannot read: gate an upgrade on it",
    )
    parser.add_argument(
        "--audit-dir",
        type=Path,
        metavar="DIR",
        help="undo logs to find pruned blobs in through the API (default: $REGISTRY_PRUNE_AUDIT_DIR or "
        "~/.local/state/registry-prune/audit); only read",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, runtime: Runtime, invocation: Invocation[UsageReport]) -> int:
    if args.top is not None and args.top < 1:
        raise UsageError(f"--top must be at least 1 (got {args.top})")
    configuration = options.load(args)
    if configuration.settings.registry is not None:
        invocation.registry = configuration.settings.registry.url
    patterns = configuration.settings.repositories or ["**"]
    undo_logs = configuration.settings.audit_dir or default_audit_dir()
    with targets.open_target(args, configuration, runtime) as target:
        invocation.registry = target.label
        backend = target.backend
        usage = measure_usage(
            target.backend,
            configuration,
            registry=target.label,
            patterns=patterns,
            exact=target.direct,
            upgrade_check=args.upgrade_check,
            progress=runtime.progress(args),
            stop=runtime.stop,
            pending=(
                (lambda live: backend.pending_garbage(live, undo_logs=undo_logs))
                if isinstance(backend, CountsPendingGarbage)
                else None
            ),
        )
    report = build_usage_report(usage, registry=target.label, started=invocation.started)

    def render(report: UsageReport) -> None:
        if args.json != "-":
            print_usage(report, args.top)
        print(redact(report.message), file=sys.stderr if args.json == "-" else sys.stdout)

    return invocation.finish(report, render)


def print_usage(report: UsageReport, top: int | None, stream: TextIO = sys.stdout) -> None:
    rows = sorted(report.repositories, key=lambda r: (-r.reclaimable_bytes, -r.referenced_bytes, r.repository))
    shown = rows[:top] if top else rows
    table = [("REPOSITORY", "TAGS", "MANIFESTS", "REFERENCED", "RECLAIMABLE", "DELETE")]
    for row in shown:
        table.append(
            (
                row.repository + ("" if row.selected else " (not in --repo)") + (" (blocked)" if row.blocked else ""),
                str(row.tags),
                str(row.manifests),
                format_bytes(row.referenced_bytes),
                format_bytes(row.reclaimable_bytes),
                str(row.tags_to_delete),
            )
        )
    table.append(
        (
            f"TOTAL ({plural(len(rows), 'repository', 'repositories')})",
            str(report.tags),
            str(report.manifests),
            format_bytes(report.referenced_bytes),
            format_bytes(report.reclaimable_bytes),
            str(sum(row.tags_to_delete for row in rows)),
        )
    )
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for index, line in enumerate(table):
        if index == len(table) - 1:
            stream.write("  ".join("-" * width for width in widths) + "\n")
        cells = [line[0].ljust(widths[0]), *(cell.rjust(widths[i + 1]) for i, cell in enumerate(line[1:]))]
        stream.write(redact("  ".join(cells).rstrip()) + "\n")
    if top and len(rows) > top:
        hidden = plural(len(rows) - top, "more repository", "more repositories")
        stream.write(f"({hidden} not shown; the total covers all of them)\n")
    waiting = report.waiting_for_gc
    if waiting is not None:
        bound = "" if waiting.exact else "at least "
        stream.write(
            f"Already waiting for garbage collection: {bound}{format_bytes(waiting.bytes)} in "
            f"{plural(waiting.blobs, 'blob')} no manifest references (from {waiting.source}); the next GC frees "
            "them, on top of RECLAIMABLE.\n"
        )
        if not waiting.exact:
            stream.write("The registry API lists no blobs; --storage-root DIR counts every one.\n")
    stream.write(
        "Each blob is counted once in the total, so it can be less than the sum of the rows "
        "when repositories share layers.\n"
    )
    for entry in report.schema1:
        where = f"{entry.repository}:{entry.tag}" + (f" ({entry.digest})" if entry.digest else "")
        stream.write(redact(f"schema1: {where}: cannot be read by registry 3.x; blocks its garbage collection\n"))
    if report.attachments:
        stream.write(
            f"{report.attachments} attachments (signatures, attestations, SBOMs, referrers) are counted in "
            "MANIFESTS; pruning deletes those of deleted images with them.\n"
        )
    if report.orphans:
        kept = sum(1 for orphan in report.orphans if orphan.action == "keep")
        stream.write(
            f"{len(report.orphans)} orphans (attachments whose image is gone) hold "
            f"{format_bytes(report.orphan_bytes)}; "
            f"{kept} of them kept under the policy (--orphans delete prunes those no repository needs):\n"
        )
        for orphan in report.orphans[:20]:
            name = orphan.tags[0] if orphan.tags else f"(untagged {orphan.kind})"
            text = f"  {orphan.repository}  {name}  {format_bytes(orphan.bytes)}  {orphan.reason}"
            stream.write(redact(text) + "\n")
        if len(report.orphans) > 20:
            stream.write(f"  ({len(report.orphans) - 20} more; --json FILE lists every one)\n")
    if not report.exact:
        stream.write(
            "Through the API untagged manifests are not visible; any that share a layer with a deletion keep it, "
            "so RECLAIMABLE can be slightly high (--storage-root reads them too).\n"
        )
