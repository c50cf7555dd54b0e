"""``registry-prune plan`` and ``registry-prune prune``."""

from __future__ import annotations

import argparse
import contextlib
import sys
from datetime import datetime, timezone

from pipeline_step.audit import AuditLog
from pipeline_step.cli import options, output
from pipeline_step.cli.parser import Parser, Subcommands, add_command
from pipeline_step.cli.runtime import Runtime
from pipeline_step.errors import AuthenticationError, PruneError
from pipeline_step.execution.executor import Status
from pipeline_step.pruning import PruneRun, prune
from pipeline_step.redact import redact
from pipeline_step.report import failure_report
from pipeline_step.units import format_bytes
from pipeline_step.usage import predict_catalog_reclaim


def register(commands: Subcommands[Parser]) -> None:
    plan = add_command(
        commands,
        "plan",
        description="Resolve every tag, apply the retention policy and print each decision with its reason. "
        "Changes nothing on the registry.",
    )
    prune_parser = add_command(
        commands,
        "prune",
        description="Plan exactly as `plan` does, then DELETE the planned manifests by digest. "
        "Each tag is re-resolved just before its DELETE; re-pushed tags are skipped. "
        "Every deleted manifest is written to an audit log first, so `restore` can undo the prune "
        "until garbage collection runs.",
    )
    prune_parser.add_argument("--dry-run", action="store_true", help="plan and report, delete nothing")
    for parser, handler in ((plan, run_plan), (prune_parser, run_prune)):
        options.add_registry_options(parser)
        options.add_policy_options(parser)
        options.add_output_options(parser)
        options.add_predict_option(parser)
        if parser is prune_parser:
            options.add_safety_options(parser)
        parser.set_defaults(handler=handler)


def _run(args: argparse.Namespace, runtime: Runtime, *, command: str, dry_run: bool) -> tuple[PruneRun, list[str]]:
    configuration = options.load(args)
    with options.open_target(args, configuration, runtime) as target:
        notes: list[str] = []
        with contextlib.ExitStack() as stack:
            audit: AuditLog | None = None
            if not dry_run:
                stack.enter_context(options.registry_lock(args, configuration, target.label, runtime, command=command))
                audit = options.open_audit(configuration, target.label)
                stack.callback(audit.close)
            run = prune(
                target.backend.source,
                target.backend.deleter,
                configuration,
                registry=target.label,
                dry_run=dry_run,
                command=command,
                progress=runtime.progress(args),
                stop=runtime.stop,
                audit=audit,
                requests=target.requests,
            )
        notes.extend(_prediction_notes(args, run, target, runtime))
        if run.execution is not None and run.execution.by_status(Status.DELETED):
            notes.extend(target.backend.notes)
        if audit is not None and audit.intents:
            notes.append(
                f"undo: `registry-prune restore --from {audit.path}` puts the deleted manifests back, "
                "until garbage collection runs"
            )
        return run, notes


def _prediction_notes(args: argparse.Namespace, run: PruneRun, target: options.Target, runtime: Runtime) -> list[str]:
    """Re-check the reclaim prediction against the whole catalog when asked; say what it covers."""
    plan = run.plan
    if plan.reclaim is None or not plan.step_count:
        return []
    scope = ""
    if options.predict_scope(args, direct=target.direct) == "catalog" and not runtime.stop.is_set():
        try:
            plan.reclaim = predict_catalog_reclaim(
                target.backend.source, plan, progress=runtime.progress(args), stop=runtime.stop
            )
        except AuthenticationError as exc:
            scope = f"the catalog could not be read ({exc.message}), so "
        else:
            run.report.predicted_reclaim_bytes = plan.reclaim.bytes
            if target.client is not None:
                run.report.requests = target.requests()
    if plan.reclaim.catalog_wide:
        count = plan.reclaim.repositories_scanned
        scope = f"checked against all {count} repositor{'y' if count == 1 else 'ies'} of the catalog"
    else:
        scope += (
            f"an upper bound: only the {plan.reclaim.repositories_scanned} selected repositories were checked "
            "for layers they share with others (--predict catalog checks them all)"
        )
    if not target.direct:
        scope += "; untagged manifests, invisible through the API, may keep a few more"
    return [f"reclaim prediction ({format_bytes(plan.reclaim.bytes)} in {plan.reclaim.blobs} blobs): {scope}"]


def _finish(args: argparse.Namespace, run: PruneRun, notes: list[str]) -> int:
    report = run.report
    report.notes.extend(notes)
    code = run.exit_code()
    report.exit_code = int(code)
    if args.json != "-":
        output.print_table(report)
    human = sys.stderr if args.json == "-" else sys.stdout
    print(output.summary_line(report), file=human)
    for note in notes:
        print(note, file=human)
    for blocked in (r.blocked for r in report.repositories if r.blocked):
        print(redact(f"registry-prune: warning: {blocked}"), file=sys.stderr)
    if run.execution is not None and run.execution.fatal is not None:
        print(redact(f"registry-prune: error: {run.execution.fatal}"), file=sys.stderr)
    report.write(args.json)
    return int(code)


def _guarded(args: argparse.Namespace, runtime: Runtime, *, command: str, dry_run: bool) -> int:
    """Run, and if it fails before planning is done, still leave a --json report saying why."""
    started = datetime.now(timezone.utc)
    try:
        return _finish(args, *_run(args, runtime, command=command, dry_run=dry_run))
    except PruneError as exc:
        if args.json:
            registry = getattr(args, "registry", None) or ""
            failure_report(command=command, registry=registry, dry_run=dry_run, started_at=started, error=exc).write(
                args.json
            )
        raise


def run_plan(args: argparse.Namespace, runtime: Runtime) -> int:
    return _guarded(args, runtime, command="plan", dry_run=True)


def run_prune(args: argparse.Namespace, runtime: Runtime) -> int:
    return _guarded(args, runtime, command="prune", dry_run=args.dry_run)
