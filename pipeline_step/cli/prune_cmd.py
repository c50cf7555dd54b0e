"""``registry-prune plan`` and ``registry-prune prune``."""

from __future__ import annotations

import argparse
import contextlib
import sys

from pipeline_step.audit import AuditLog
from pipeline_step.cli import options, output
from pipeline_step.cli.parser import Parser, Subcommands
from pipeline_step.cli.runtime import Runtime
from pipeline_step.errors import ExitCode
from pipeline_step.pruning import PruneRun, prune


def register(commands: Subcommands[Parser]) -> None:
    plan = commands.add_parser(
        "plan",
        help="show what a prune would delete; changes nothing",
        description="Resolve every tag, apply the retention policy and print each decision with its reason. "
        "Changes nothing on the registry.",
    )
    prune_parser = commands.add_parser(
        "prune",
        help="delete what the plan says (or --dry-run)",
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
        if parser is prune_parser:
            options.add_safety_options(parser)
        parser.set_defaults(handler=handler)


def _run(args: argparse.Namespace, runtime: Runtime, *, command: str, dry_run: bool) -> tuple[PruneRun, list[str]]:
    configuration = options.load(args)
    with options.connect(args, configuration) as client:
        client.ping()
        backend = options.open_backend(args, configuration, client, runtime)
        notes = list(backend.notes)
        with contextlib.ExitStack() as stack:
            audit: AuditLog | None = None
            if not dry_run:
                stack.enter_context(options.registry_lock(args, configuration, client.url, runtime, command=command))
                audit = options.open_audit(configuration, client.url)
                stack.callback(audit.close)
            run = prune(
                backend.source,
                backend.deleter,
                configuration,
                registry=client.url,
                dry_run=dry_run,
                command=command,
                progress=runtime.progress(args),
                stop=runtime.stop,
                audit=audit,
                requests=lambda: client.stats.requests,
            )
        if audit is not None and audit.intents:
            notes.append(
                f"undo: `registry-prune restore --from {audit.path}` puts the deleted manifests back, "
                "until garbage collection runs"
            )
        return run, notes


def _finish(args: argparse.Namespace, run: PruneRun, notes: list[str]) -> int:
    report = run.report
    report.notes.extend(notes)
    if args.json != "-":
        output.print_table(report)
    human = sys.stderr if args.json == "-" else sys.stdout
    print(output.summary_line(report), file=human)
    for note in notes:
        print(note, file=human)
    execution = run.execution
    code = ExitCode.OK
    if execution is not None:
        if execution.interrupted:
            code = ExitCode.INTERRUPTED
        elif execution.fatal is not None:
            code = execution.fatal.exit_code
            print(f"registry-prune: error: {execution.fatal}", file=sys.stderr)
        elif report.failed:
            code = ExitCode.PARTIAL
    report.exit_code = int(code)
    output.write_json(report, args.json)
    return int(code)


def run_plan(args: argparse.Namespace, runtime: Runtime) -> int:
    return _finish(args, *_run(args, runtime, command="plan", dry_run=True))


def run_prune(args: argparse.Namespace, runtime: Runtime) -> int:
    return _finish(args, *_run(args, runtime, command="prune", dry_run=args.dry_run))
