"""``registry-prune recover``: the post-push job, end to end."""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import TextIO

from pipeline_step.backends import open_backend
from pipeline_step.cli import classify_cmd, integration_options, options, targets
from pipeline_step.cli.invocation import Invocation
from pipeline_step.cli.parser import Parser, Subcommands, add_command
from pipeline_step.cli.runtime import Runtime
from pipeline_step.errors import UsageError
from pipeline_step.execution.audit import AuditLog
from pipeline_step.integrations.classify import Classification
from pipeline_step.integrations.jenkins import current_build
from pipeline_step.integrations.slack import BuildContext, SlackReporter
from pipeline_step.operations.recover import Recoverer, RecoverSettings
from pipeline_step.registry.reference import ImageRef, infer_image_ref, parse_image_ref
from pipeline_step.reports.recover import RecoveryReport, SlackReport, build_recovery_report, slack_summary
from pipeline_step.support.redact import redact, register_secret
from pipeline_step.support.units import describe_freed, format_bytes, plural

REPORT = RecoveryReport

DESCRIPTION = """\
After a push failed (or whenever the registry disk is low): decide whether
pruning can help, prune under the retention policy, garbage-collect and
restart the registry, retry the push and verify it, then report to Slack.

Triggers: --console-log/--jenkins-build showing a registry 500 or a registry
disk-full error, a --disk probe under --min-free, or --force. A log that
blames the agent's own disk, credentials or the network exits 10 and deletes
nothing. Garbage collection closes the undo window of `restore`."""

EPILOG = """\
example (the registry in a Docker container named registry, as in `docker run registry:2`):
  GC='docker run --rm -v registry-data:/var/lib/registry registry:2 garbage-collect /etc/docker/registry/config.yml'
  registry-prune recover --registry https://reg:5000 --repo 'team/*' --match alpha --keep 5 \\
      --console-log build.log --disk 'command:ssh reg df -PB1 /var/lib/registry' --min-free 20% --min-keep 2 \\
      --stop-cmd 'ssh reg docker stop registry' --start-cmd 'ssh reg docker start registry' \\
      --gc-cmd "ssh reg $GC" \\
      --push-cmd 'docker push reg:5000/team/app:3.3.0-alpha.74' --json recover.json"""


def register(commands: Subcommands[Parser]) -> None:
    parser = add_command(
        commands,
        "recover",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    options.add_registry_options(parser)
    options.add_policy_options(parser)
    options.add_predict_option(parser)
    group = parser.add_argument_group("recovery")
    group.add_argument("--force", action="store_true", help="act even without a failed log or a low disk")
    group.add_argument("--dry-run", action="store_true", help="decide and plan only: no delete, GC or push")
    group.add_argument("--console-log", metavar="FILE", help="the failed build's console log to classify")
    group.add_argument(
        "--min-keep",
        type=int,
        metavar="N",
        help="if free space stays under --min-free, tighten keep step by step down to N",
    )
    group.add_argument("--push-cmd", metavar="CMD", help="the push to retry, e.g. 'docker push reg/team/app:1.2.3'")
    group.add_argument("--push-attempts", type=int, default=3, metavar="N", help="push attempts (default: 3)")
    group.add_argument(
        "--push-backoff",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="wait N×SECONDS before attempt N+1 (default: 5)",
    )
    group.add_argument("--image", metavar="REF", help="the pushed image to verify (default: found in --push-cmd)")
    integration_options.add_gc_options(parser, required=False)
    integration_options.add_disk_options(parser)
    integration_options.add_slack_options(parser)
    integration_options.add_jenkins_options(parser)
    parser.add_argument_group("Jenkins").add_argument(
        "--jenkins-describe",
        action="store_true",
        help="set the current build's description ($JOB_NAME #$BUILD_NUMBER) to the outcome",
    )
    out = parser.add_argument_group("output")
    out.add_argument("--json", metavar="FILE", help="write the JSON report to FILE (- for stdout)")
    out.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    options.add_safety_options(parser)
    parser.set_defaults(handler=run)


def _classification(args: argparse.Namespace) -> Classification | None:
    if args.console_log or args.jenkins_build:
        return classify_cmd.classify_source(args)[1]
    return None


def _settings(args: argparse.Namespace, registry_url: str) -> RecoverSettings:
    if args.min_keep is not None and args.min_keep < 0:
        raise UsageError(f"--min-keep: must be >= 0 (got {args.min_keep})")
    if args.push_attempts < 1:
        raise UsageError(f"--push-attempts: must be >= 1 (got {args.push_attempts})")
    if args.push_cmd is not None and not args.push_cmd.strip():
        raise UsageError("--push-cmd: is empty", hint="give the shell command to run")
    gc = integration_options.gc_from_args(args)
    classification = _classification(args)
    if not (args.force or classification is not None or args.disk):
        raise UsageError(
            "recover has no trigger",
            hint="pass --console-log FILE or --jenkins-build JOB#N (the failed log), --disk PROBE "
            "(acts under --min-free), or --force",
        )
    image: ImageRef | None = parse_image_ref(args.image, registry_url) if args.image else None
    if image is None and args.push_cmd:
        image = infer_image_ref(args.push_cmd, registry_url)
    return RecoverSettings(
        force=args.force,
        dry_run=args.dry_run,
        min_free=integration_options.min_free_from_args(args) if args.disk else None,
        min_keep=args.min_keep,
        push_command=args.push_cmd,
        push_attempts=args.push_attempts,
        push_backoff=args.push_backoff,
        image=image,
        gc=gc,
        classification=classification,
        health_timeout=args.health_timeout,
        predict_catalog=options.predict_scope(args, direct=targets.direct_storage(args).given) == "catalog",
    )


def run(args: argparse.Namespace, runtime: Runtime, invocation: Invocation[RecoveryReport]) -> int:
    configuration = options.load(args)
    invocation.registry = configuration.registry.url
    # Slack and the build description hear of every ending, failures included, once the report exists.
    slack = integration_options.slack_from_args(args)
    if slack is not None:
        invocation.hooks.append(lambda report: _send_slack(slack, report))
    invocation.hooks.append(lambda report: _describe_build(args, report))
    for command in (args.push_cmd, *integration_options.gc_commands(args)):
        if command and "://" in command and "@" in command.split("://", 1)[1].split("/", 1)[0]:
            register_secret(command.split("://", 1)[1].split("@", 1)[0])  # user:password@ in a URL
    human = sys.stderr if args.json == "-" else sys.stdout

    def echo(line: str) -> None:
        print(redact(f"recover: {line}"), file=human, flush=True)

    direct = targets.direct_storage(args)
    if direct.s3 is not None and args.disk:
        raise UsageError(
            f"--disk: the registry stores on S3 ({direct.s3.label}), and object storage has no disk to fill",
            hint="leave out --disk and --min-free: recover acts on the failed log (--console-log or "
            "--jenkins-build) or on --force",
        )
    with targets.connect(args, configuration) as client, contextlib.ExitStack() as stack:
        settings = _settings(args, client.url)
        probe = integration_options.disk_from_args(args)
        client.ping()
        replicas = targets.replica_clients(args, client)
        for replica in replicas:
            stack.callback(replica.close)
        backend = open_backend(
            client=client,
            storage_root=direct.root,
            s3=direct.s3,
            label=client.url,
            concurrency=configuration.settings.concurrency,
            stop=runtime.stop,
        )
        if direct.given:
            stack.callback(backend.close)
        with contextlib.ExitStack() as locks:
            audit: AuditLog | None = None
            if not settings.dry_run:
                locks.enter_context(
                    targets.registry_lock(args, configuration, client.url, runtime, command="recover", backend=backend)
                )
                audit = targets.open_audit(configuration, client.url)
                locks.callback(audit.close)
            recovery = Recoverer(
                client,
                backend,
                configuration,
                settings,
                probe=probe,
                audit=audit,
                progress=runtime.progress(args),
                stop=runtime.stop,
                echo=echo,
                replicas=replicas,
            ).run()
        restarted = any(r.gc is not None and r.gc.restarted for r in recovery.rounds)
        if any(r.execution for r in recovery.rounds) and not restarted:
            recovery.notes.extend(backend.notes)
    report = build_recovery_report(recovery, audit_log=str(audit.path) if audit and audit.intents else None)
    return invocation.finish(report, lambda report: _print_summary(report, human))


def _send_slack(slack: SlackReporter, report: RecoveryReport) -> None:
    sent = slack.send(slack_summary(report, BuildContext.from_env()))
    report.slack = SlackReport(delivered=sent.delivered, destination=sent.destination, warning=sent.warning)


def _describe_build(args: argparse.Namespace, report: RecoveryReport) -> None:
    if not args.jenkins_describe:
        return
    build = current_build()
    client = integration_options.jenkins_from_args(args)
    if build is None or client is None:
        print(
            "registry-prune: warning: --jenkins-describe needs $JOB_NAME, $BUILD_NUMBER and --jenkins-url",
            file=sys.stderr,
        )
        return
    try:
        client.set_description(build.job, build.number, f"registry-prune: {report.message}"[:250])
    except Exception as exc:  # noqa: BLE001 - the description is a courtesy; never fail the recovery over it
        print(redact(f"registry-prune: warning: could not set the build description: {exc}"), file=sys.stderr)


def _print_summary(report: RecoveryReport, stream: TextIO) -> None:
    lines = [f"recover {report.outcome}: {report.message}"]
    if report.freed_bytes is not None:
        predicted = (
            f" (predicted {format_bytes(report.predicted_reclaim_bytes)})"
            if report.predicted_reclaim_bytes is not None
            else ""
        )
        lines.append(f"{describe_freed(report.freed_bytes)}{predicted}")
    if report.push is not None:
        lines.append(
            f"push: {'succeeded' if report.push_succeeded else 'FAILED'} "
            f"after {plural(report.push_attempts, 'attempt')}"
            + (f", {plural(report.push.checked_blobs or 0, 'blob')} verified" if report.push.verified else "")
        )
    if report.slack is not None:
        lines.append(f"slack: {'sent' if report.slack.delivered else 'NOT sent'} ({report.slack.destination})")
    lines.extend(report.notes)
    if report.audit_log and not report.gc_ran:
        lines.append(f"undo: registry-prune restore --from {report.audit_log} (until garbage collection runs)")
    for line in lines:
        print(redact(line), file=stream)
    for error in report.errors:
        print(redact(f"registry-prune: error: {error.line()}"), file=sys.stderr)
