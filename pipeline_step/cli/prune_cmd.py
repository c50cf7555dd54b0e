"""``registry-prune plan`` and ``registry-prune prune``."""

from __future__ import annotations

import argparse
import sys

from pipeline_step.cli import options, output
from pipeline_step.cli.parser import Parser, Subcommands
from pipeline_step.cli.runtime import Runtime
from pipeline_step.errors import ExitCode
from pipeline_step.execution.api_deleter import ApiDeleter
from pipeline_step.inventory.api import ApiInventorySource
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
        "Each tag is re-resolved just before its DELETE; re-pushed tags are skipped.",
    )
    prune_parser.add_argument("--dry-run", action="store_true", help="plan and report, delete nothing")
    for parser, handler in ((plan, run_plan), (prune_parser, run_prune)):
        options.add_registry_options(parser)
        options.add_policy_options(parser)
        options.add_output_options(parser)
        parser.set_defaults(handler=handler)


def _run(args: argparse.Namespace, runtime: Runtime, *, command: str, dry_run: bool) -> PruneRun:
    configuration = options.load(args)
    with options.connect(args, configuration) as client:
        client.ping()
        source = ApiInventorySource(client, concurrency=configuration.settings.concurrency, stop=runtime.stop)
        return prune(
            source,
            ApiDeleter(client),
            configuration,
            registry=client.url,
            dry_run=dry_run,
            command=command,
            progress=runtime.progress(args),
            stop=runtime.stop,
            requests=lambda: client.stats.requests,
        )


def _finish(args: argparse.Namespace, run: PruneRun) -> int:
    report = run.report
    if args.json != "-":
        output.print_table(report)
    print(output.summary_line(report), file=sys.stderr if args.json == "-" else sys.stdout)
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
    return _finish(args, _run(args, runtime, command="plan", dry_run=True))


def run_prune(args: argparse.Namespace, runtime: Runtime) -> int:
    return _finish(args, _run(args, runtime, command="prune", dry_run=args.dry_run))
