"""``registry-prune gc``: garbage-collect in a safe order and measure what it freed."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import TextIO

from pydantic import BaseModel

from pipeline_step import __version__, jsonout
from pipeline_step.cli import integration_options, options
from pipeline_step.cli.parser import Parser, Subcommands, add_command
from pipeline_step.cli.runtime import Runtime
from pipeline_step.errors import ExitCode, UsageError
from pipeline_step.integrations.gc import run_gc, wait_until
from pipeline_step.recover_report import GcReport, gc_report
from pipeline_step.redact import redact
from pipeline_step.units import format_bytes

DESCRIPTION = """\
Run the registry's garbage collection with the operator's commands, in this
order: --readonly-cmd (optional), --gc-cmd, then --restart-cmd (always, even
after a failure, so the registry never stays read-only and its stale blob
cache is dropped). Measures free space before and after with --disk.

Run API prunes *before* --readonly-cmd: a read-only registry refuses DELETE.
Garbage collection closes the undo window: `restore` cannot bring pruned tags
back afterwards."""

EPILOG = """\
example:
  registry-prune gc --registry https://reg:5000 --disk 'command:ssh reg df -PB1 /var/lib/registry' \\
      --gc-cmd 'ssh reg docker exec registry bin/registry garbage-collect /etc/docker/registry/config.yml' \\
      --restart-cmd 'ssh reg docker restart registry' --predicted-from prune.json"""


class GcRunReport(BaseModel):
    tool: str = "registry-prune"
    version: str = __version__
    command: str = "gc"
    registry: str | None
    exit_code: int
    predicted_reclaim_bytes: int | None
    gc: GcReport
    notes: list[str]


def register(commands: Subcommands[Parser]) -> None:
    parser = add_command(
        commands,
        "gc",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    integration_options.add_gc_options(parser, required=True)
    group = parser.add_argument_group("measurement")
    group.add_argument(
        "--predicted-from",
        metavar="REPORT",
        type=Path,
        help="a prune/plan JSON report whose predicted_reclaim_bytes to compare with the measurement",
    )
    group.add_argument("--json", metavar="FILE", help="write the JSON report to FILE (- for stdout)")
    options.add_registry_options(parser)
    integration_options.add_disk_options(parser)
    options.add_safety_options(parser, audit=False)
    parser.set_defaults(handler=run)


def _predicted(path: Path | None) -> int | None:
    if path is None:
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"--predicted-from {path}: cannot read a JSON report ({exc})") from None
    value = document.get("predicted_reclaim_bytes") if isinstance(document, dict) else None
    if not isinstance(value, int):
        raise UsageError(
            f"--predicted-from {path}: it has no predicted_reclaim_bytes",
            hint="pass the --json report of `registry-prune prune` or `plan`",
        )
    return value


def run(args: argparse.Namespace, runtime: Runtime) -> int:
    commands = integration_options.gc_from_args(args)
    assert commands is not None  # --gc-cmd is required
    predicted = _predicted(args.predicted_from)
    probe = integration_options.disk_from_args(args)
    human: TextIO = sys.stderr if args.json == "-" else sys.stdout
    # With a registry (flag or config file): hold its lock and wait for it after the restart.
    configuration = options.load(args) if args.registry or args.config else None

    def echo(line: str) -> None:
        print(redact(f"gc: {line}"), file=human, flush=True)

    with contextlib.ExitStack() as stack:
        wait_healthy = None
        registry_url: str | None = None
        if configuration is not None:
            client = stack.enter_context(options.connect(args, configuration))
            registry_url = client.url
            stack.enter_context(options.registry_lock(args, configuration, client.url, runtime, command="gc"))

            def wait_healthy() -> None:
                wait_until(client.ping, timeout=args.health_timeout)

        result = run_gc(commands, probe=probe, echo=echo, wait_healthy=wait_healthy)
    notes = list(result.warnings)
    if result.summary is not None:  # GC ran to its summary line
        notes.append("garbage collection closes the undo window: `restore` can no longer bring pruned tags back")
    code = ExitCode.OK if result.ok else (result.error.exit_code if result.error else ExitCode.GC_FAILED)
    report = GcRunReport(
        registry=registry_url, exit_code=int(code), predicted_reclaim_bytes=predicted, gc=gc_report(result), notes=notes
    )
    summary = result.summary
    lines = [
        f"gc {'ok' if result.ok else 'FAILED'}"
        + (f": {summary.blobs_eligible} blobs and {summary.manifests_eligible} manifests deleted" if summary else "")
    ]
    if result.freed_bytes is not None:
        versus = f" (predicted {format_bytes(predicted)})" if predicted is not None else ""
        lines.append(f"freed {format_bytes(result.freed_bytes)} measured{versus}")
    if result.error is not None:
        lines.append(f"registry-prune: error: {result.error}")
    lines.extend(notes)
    for line in lines:
        print(redact(line), file=human)
    jsonout.write(report, args.json)
    return int(code)
