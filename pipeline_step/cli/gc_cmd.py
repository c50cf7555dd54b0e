"""``registry-prune gc``: garbage-collect in a safe order and measure what it freed."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import TextIO

from pipeline_step.cli import integration_options, options, targets
from pipeline_step.cli.invocation import Invocation
from pipeline_step.cli.parser import Parser, Subcommands, add_command
from pipeline_step.cli.runtime import Runtime
from pipeline_step.errors import UsageError
from pipeline_step.integrations.gc import wait_until
from pipeline_step.integrations.slack import BuildContext, RecoverySummary, SlackReporter
from pipeline_step.operations.gc import garbage_collect
from pipeline_step.reports.gc import GcReport, SlackDelivery, gc_section
from pipeline_step.support.redact import redact

DESCRIPTION = """\
Run the registry's garbage collection with the operator's commands, behind a
guard, because GC must never run while the registry accepts pushes:
--readonly-cmd, --gc-cmd, --restart-cmd (read-only mode), or --stop-cmd,
--gc-cmd, --start-cmd (the registry stopped). The closing command always runs,
even after a failure, so the registry never stays read-only or stopped and its
stale blob cache is dropped. --allow-live-gc runs GC unguarded and says what it
risks. Measures free space before and after with --disk.

Run API prunes *before* the guard: a read-only registry refuses DELETE.
Garbage collection closes the undo window: afterwards `restore` brings back
only the pruned images whose blobs survived because another repository shares
them, names every other one and exits 5.

With Slack configured ($SLACK_WEBHOOK_URL, or a bot token and --slack-channel)
the freed bytes are reported there; a Slack failure is only a warning."""

EPILOG = """\
example (the registry in a Docker container named registry, as in `docker run registry:2`):
  GC='docker run --rm -v registry-data:/var/lib/registry registry:2 garbage-collect /etc/docker/registry/config.yml'
  registry-prune gc --registry https://reg:5000 --disk 'command:ssh reg df -PB1 /var/lib/registry' \\
      --stop-cmd 'ssh reg docker stop registry' \\
      --gc-cmd "ssh reg $GC" \\
      --start-cmd 'ssh reg docker start registry' --predicted-from prune.json"""


REPORT = GcReport


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
    integration_options.add_slack_options(parser)
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


def run(args: argparse.Namespace, runtime: Runtime, invocation: Invocation[GcReport]) -> int:
    commands = integration_options.gc_from_args(args)
    assert commands is not None  # --gc-cmd is required
    predicted = _predicted(args.predicted_from)
    probe = integration_options.disk_from_args(args)
    slack = integration_options.slack_from_args(args)
    if slack is not None:
        invocation.hooks.append(lambda report: _send_slack(slack, report))
    human: TextIO = sys.stderr if args.json == "-" else sys.stdout
    # With a registry (flag or config file): hold its lock and wait for it after the restart.
    configuration = options.load(args) if args.registry or args.config else None

    def echo(line: str) -> None:
        print(redact(line), file=human, flush=True)

    with contextlib.ExitStack() as stack:
        wait_healthy = None
        if configuration is not None:
            invocation.registry = configuration.registry.url
            client = stack.enter_context(targets.connect(args, configuration))
            stack.enter_context(targets.registry_lock(args, configuration, client.url, runtime, command="gc"))

            replicas = targets.replica_clients(args, client)
            for replica in replicas:
                stack.callback(replica.close)

            def wait_healthy() -> None:
                for each in [client, *replicas]:  # every replica answers before GC counts as done
                    wait_until(each.ping, timeout=args.health_timeout)

        run = garbage_collect(
            commands,
            probe=probe,
            predicted_bytes=predicted,
            echo=echo,
            wait_healthy=wait_healthy,
            stop=runtime.stop.is_set,
        )
    outcome = run.outcome()
    report = GcReport(
        outcome=outcome.name,
        exit_code=int(outcome.exit_code),
        message=outcome.message,
        started=invocation.started,
        registry=invocation.registry,
        predicted_reclaim_bytes=predicted,
        gc=gc_section(run.result),
        notes=run.notes,
    )
    report.conclude(outcome)

    def render(report: GcReport) -> None:
        for line in (report.message, *report.notes):
            print(redact(line), file=human)
        if report.slack is not None:
            print(f"slack: {'sent' if report.slack.delivered else 'NOT sent'} ({report.slack.destination})", file=human)

    return invocation.finish(report, render)


def _send_slack(slack: SlackReporter, report: GcReport) -> None:
    """The freed bytes, as measured (and predicted), in the same Block Kit layout recover uses."""
    section = report.gc
    summary = RecoverySummary(
        outcome=report.message,
        success=report.exit_code == 0,
        registry=report.registry,
        bytes_freed=section.freed_bytes if section else None,
        bytes_predicted=report.predicted_reclaim_bytes,
        gc_ran=bool(section and section.blobs_marked is not None),
        build=BuildContext.from_env(),
        error=section.error if section else None,
    )
    sent = slack.send(summary)
    report.slack = SlackDelivery(delivered=sent.delivered, destination=sent.destination, warning=sent.warning)
