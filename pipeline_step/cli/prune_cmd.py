"""``registry-prune plan`` and ``registry-prune prune``."""

from __future__ import annotations

import argparse
import contextlib
import sys

from pipeline_step.cli import options, output, targets
from pipeline_step.cli.invocation import Invocation
from pipeline_step.cli.parser import Parser, Subcommands, add_command
from pipeline_step.cli.runtime import Runtime
from pipeline_step.execution.audit import AuditLog, default_audit_dir, latest_intents
from pipeline_step.operations.prune import prune
from pipeline_step.reports.prune import PruneReport, build_prune_report
from pipeline_step.support.redact import redact

REPORT = PruneReport


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


def _run(args: argparse.Namespace, runtime: Runtime, invocation: Invocation[PruneReport], *, dry_run: bool) -> int:
    command = invocation.command
    configuration = options.load(args)
    if configuration.settings.registry is not None:
        invocation.registry = configuration.settings.registry.url
    with targets.open_target(args, configuration, runtime) as target:
        invocation.registry = target.label
        with contextlib.ExitStack() as stack:
            audit: AuditLog | None = None
            if not dry_run:
                stack.enter_context(
                    targets.registry_lock(
                        args, configuration, target.label, runtime, command=command, backend=target.backend
                    )
                )
                audit = targets.open_audit(configuration, target.label)
                stack.callback(audit.close)
            run = prune(
                target.backend,
                configuration,
                dry_run=dry_run,
                command=command,
                predict=options.predict_scope(args, direct=target.direct),
                progress=runtime.progress(args),
                stop=runtime.stop,
                audit=audit,
                history=lambda: latest_intents(configuration.settings.audit_dir or default_audit_dir(), target.label),
            )
        audit_log = str(audit.path) if audit is not None and audit.intents else None
        if audit_log is not None:
            run.notes.append(
                f"undo: `registry-prune restore --from {audit_log}` puts the deleted manifests back, "
                "until garbage collection runs"
            )
        report = build_prune_report(run, backend=target.backend.name, audit_log=audit_log, requests=target.requests())
    return invocation.finish(report, lambda report: _render(args, report))


def _render(args: argparse.Namespace, report: PruneReport) -> None:
    human = sys.stderr if args.json == "-" else sys.stdout
    if report.registry_line and report.registry is not None:
        print(redact(f"registry: {report.registry} (distribution {report.registry_line})"), file=human)
    if args.json != "-":
        output.print_table(report)
    for line in (report.message, *report.notes):
        print(redact(line), file=human)
    for blocked in (r.blocked for r in report.repositories if r.blocked):
        print(redact(f"registry-prune: warning: {blocked}"), file=sys.stderr)
    for error in report.errors:
        print(redact(f"registry-prune: error: {error.line()}"), file=sys.stderr)


def run_plan(args: argparse.Namespace, runtime: Runtime, invocation: Invocation[PruneReport]) -> int:
    return _run(args, runtime, invocation, dry_run=True)


def run_prune(args: argparse.Namespace, runtime: Runtime, invocation: Invocation[PruneReport]) -> int:
    return _run(args, runtime, invocation, dry_run=args.dry_run)
