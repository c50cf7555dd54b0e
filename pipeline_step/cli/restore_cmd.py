"""``registry-prune restore``: undo a prune from its audit log, until garbage collection runs."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from pipeline_step.cli import options, targets
from pipeline_step.cli.invocation import Invocation
from pipeline_step.cli.parser import Parser, Subcommands, add_command
from pipeline_step.cli.runtime import Runtime
from pipeline_step.errors import EXIT_CODES, ExitCode, UsageError
from pipeline_step.execution.audit import newest_audit_log, read_audit
from pipeline_step.operations.restore import Restorer, select
from pipeline_step.policy.config import load_configuration
from pipeline_step.reports.restore import RestoreReport, build_restore_report
from pipeline_step.support.redact import redact

REPORT = RestoreReport

DESCRIPTION = """\
Put the manifests a prune deleted back, byte for byte, and re-tag them, from
the audit log the prune wrote (every prune prints its path).

This works until garbage collection runs: GC removes the blobs of deleted
manifests. Every blob is read before its manifest is PUT back, so nothing
broken is ever restored; images whose blobs are gone are listed with the
missing blobs. A tag that now points at another digest (pushed after the
prune) is left alone unless --force is given."""

EPILOG = (
    "exit codes:\n"
    + "".join(
        f"  {int(code):<4} {EXIT_CODES[code]}\n"
        for code in (ExitCode.OK, ExitCode.USAGE, ExitCode.REGISTRY, ExitCode.PARTIAL, ExitCode.LOCKED)
    )
    + """
example:
  registry-prune restore --from ~/.local/state/registry-prune/audit/20240601T120000Z-0123abcd.jsonl \\
      --tag 3.3.0-alpha.41 --dry-run
  registry-prune restore --latest registry-prune-audit --dry-run   # the newest log in that folder"""
)


def register(commands: Subcommands[Parser]) -> None:
    parser = add_command(
        commands,
        "restore",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    group = parser.add_argument_group("restore")
    source = group.add_mutually_exclusive_group(required=True)
    source.add_argument("--from", dest="audit_file", type=Path, metavar="AUDIT_FILE", help="a prune's audit log")
    source.add_argument(
        "--latest",
        type=Path,
        metavar="DIR",
        help="the newest audit log in DIR (e.g. the archived registry-prune-audit/ of a Jenkins build)",
    )
    group.add_argument(
        "--tag", action="append", metavar="TAG", help="restore only the images carrying TAG (repeatable)"
    )
    # Not "repo": that dest is the prune commands' repository selection in the configuration.
    group.add_argument(
        "--repo", dest="only_repos", action="append", metavar="NAME", help="restore only this repository (repeatable)"
    )
    group.add_argument("--force", action="store_true", help="move a tag back even if it now points elsewhere")
    group.add_argument("--dry-run", action="store_true", help="check every image and report; change nothing")
    group.add_argument("--json", metavar="FILE", help="write the JSON report to FILE (- for stdout)")
    options.add_registry_options(parser)
    options.add_safety_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, runtime: Runtime, invocation: Invocation[RestoreReport]) -> int:
    direct_flag = next(
        (flag for flag, dest in (("--storage-root", "storage_root"), ("--registry-config", "registry_config"))
         if getattr(args, dest, None) is not None),
        None,
    )  # fmt: skip
    if direct_flag is not None:
        raise UsageError(
            f"restore puts manifests back through the registry API; {direct_flag} is not supported",
            hint="pass --registry URL, or leave it out to use the registry named in the audit log",
        )
    if args.latest is not None:
        args.audit_file = newest_audit_log(args.latest)
        human_out = sys.stderr if args.json == "-" else sys.stdout
        print(f"restoring from {args.audit_file}, the newest undo log in {args.latest}", file=human_out, flush=True)
    deletions = list(read_audit(args.audit_file))
    if not deletions:
        raise UsageError(f"{args.audit_file} records no deletions: there is nothing to restore")
    chosen = select(deletions, tags=args.tag or (), repositories=args.only_repos or ())
    audited = sorted({d.registry for d in deletions})
    if args.registry is None and (args.config is None or load_configuration(args.config).settings.registry is None):
        if not audited[0].startswith(("http://", "https://")):
            raise UsageError(
                f"the audit log names no registry URL ({audited[0]}): it was written by a direct-storage prune",
                hint="pass --registry URL of the registry that serves that storage",
            )
        args.registry = audited[0]  # the registry the prune ran against
    configuration = options.load(args)
    invocation.registry = configuration.registry.url
    human = sys.stderr if args.json == "-" else sys.stdout

    def echo(line: str) -> None:
        print(redact(line), file=human, flush=True)

    with targets.connect(args, configuration) as client, contextlib.ExitStack() as stack:
        client.ping()
        if client.url not in audited:
            echo(f"note: restoring into {client.url}; the audit log was written for {', '.join(audited)}")
        if not args.dry_run:
            stack.enter_context(targets.registry_lock(args, configuration, client.url, runtime, command="restore"))
        restorer = Restorer(client, force=args.force, dry_run=args.dry_run, echo=echo, stop=runtime.stop.is_set)
        result = restorer.run(chosen)
    report = build_restore_report(result, audit_file=str(args.audit_file), started=invocation.started)

    def render(report: RestoreReport) -> None:
        for line in (report.message, *report.notes):
            echo(line)

    return invocation.finish(report, render)
