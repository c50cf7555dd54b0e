"""``registry-prune classify``: can pruning the registry fix this failed build?

Exit 0 when it can (``registry-500``, ``registry-disk-full``), 10 when it
cannot, 2 for bad input, 4 when Jenkins cannot be read.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path
from typing import TextIO

from pipeline_step.cli import integration_options
from pipeline_step.cli.invocation import Invocation
from pipeline_step.cli.parser import Parser, Subcommands, add_command
from pipeline_step.cli.runtime import Runtime
from pipeline_step.errors import ExitCode, UsageError
from pipeline_step.integrations.classify import Classification, classify_file, classify_stream, classify_text
from pipeline_step.operations.outcome import Outcome
from pipeline_step.reports.classify import ClassifyReport
from pipeline_step.support.redact import redact

DESCRIPTION = """\
Read a CI console log and say why the push failed, and whether pruning the
registry can fix it. Categories: registry-500, registry-disk-full (pruning
can help: exit 0); agent-disk-full, auth, network, unknown (it cannot: exit 10).

The log comes from --console-log FILE (- for stdin), from a Jenkins build
with --jenkins-build JOB#N, or from stdin when it is not a terminal.
Timestamps and ANSI colours are ignored."""

EPILOG = """\
examples:
  registry-prune classify --console-log build.log
  curl -s "$BUILD_URL/consoleText" | registry-prune classify
  JENKINS_API_TOKEN=... registry-prune classify --jenkins-url https://ci.example \\
      --jenkins-user ci --jenkins-build team/app#lastFailedBuild --json -"""


REPORT = ClassifyReport


def register(commands: Subcommands[Parser]) -> None:
    parser = add_command(
        commands,
        "classify",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_argument_group("log source")
    source.add_argument("--console-log", metavar="FILE", help="the console log to read; - for stdin")
    integration_options.add_jenkins_options(parser)
    output = parser.add_argument_group("output")
    output.add_argument("--json", metavar="FILE", help="write the result as JSON to FILE (- for stdout)")
    parser.set_defaults(handler=run)


def _stdin_text() -> TextIO:
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is None:  # already text (embedded callers, tests)
        return sys.stdin
    return io.TextIOWrapper(buffer, encoding="utf-8", errors="replace", newline="")


def _from_file(path: str) -> Classification:
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"--console-log {path}: is a directory", hint="give the console log file")
    try:
        return classify_file(target)
    except FileNotFoundError:
        raise UsageError(
            f"--console-log {path}: no such file", hint="give an existing console log, or - for stdin"
        ) from None
    except OSError as exc:
        raise UsageError(f"--console-log {path}: cannot read it: {exc.strerror or exc}") from None


def classify_source(args: argparse.Namespace) -> tuple[str, Classification]:
    """Classify the log the flags name: ``--console-log``, ``--jenkins-build``, else stdin.

    Returns a description of the source ("file:PATH", "jenkins:JOB#N", "stdin") and the result.
    ``recover`` calls this too; it needs ``console_log`` and the Jenkins options on ``args``.
    """
    console_log: str | None = getattr(args, "console_log", None)
    if console_log and args.jenkins_build:
        raise UsageError("give either --console-log or --jenkins-build, not both")
    if args.jenkins_build:
        ref = integration_options.build_ref_from_args(args)
        assert ref is not None
        client = integration_options.jenkins_from_args(args)
        if client is None:
            raise UsageError("--jenkins-build needs the Jenkins URL", hint="pass --jenkins-url URL or set $JENKINS_URL")
        ref = client.resolve(ref)
        return f"jenkins:{ref}", classify_text(client.console_text(ref.job, ref.number))
    if console_log and console_log != "-":
        return f"file:{console_log}", _from_file(console_log)
    if console_log != "-" and (sys.stdin is None or sys.stdin.isatty()):
        raise UsageError(
            "no log to classify",
            hint="pass --console-log FILE, --jenkins-build JOB#N, or pipe the log on stdin",
        )
    return "stdin", classify_stream(_stdin_text())


def _print_human(result: Classification, source: str, stream: TextIO) -> None:
    verdict = "a registry prune can help" if result.prune_can_help else "a registry prune cannot help"
    lines = [f"{result.category.value}: {verdict}"]
    if result.evidence is not None:
        lines.append(f"  evidence ({source}, line {result.line}): {result.evidence}")
    lines.append(f"  {result.explanation}")
    if result.also_seen:
        lines.append(f"  also seen: {', '.join(category.value for category in result.also_seen)}")
    stream.write(redact("\n".join(lines)) + "\n")


def run(args: argparse.Namespace, runtime: Runtime, invocation: Invocation[ClassifyReport]) -> int:
    source, result = classify_source(args)
    verdict = "a registry prune can help" if result.prune_can_help else "a registry prune cannot help"
    outcome = Outcome(
        result.category.value,
        ExitCode.OK if result.prune_can_help else ExitCode.CANNOT_HELP,
        f"{result.category.value}: {verdict}",
    )
    report = ClassifyReport(
        outcome=outcome.name,
        exit_code=int(outcome.exit_code),
        message=outcome.message,
        started=invocation.started,
        source=source,
        category=result.category.value,
        prune_can_help=result.prune_can_help,
        evidence=result.evidence,
        line=result.line,
        explanation=result.explanation,
        also_seen=[category.value for category in result.also_seen],
        lines_scanned=result.lines_scanned,
    )
    report.conclude(outcome)
    human = sys.stderr if args.json == "-" else sys.stdout
    return invocation.finish(report, lambda _: _print_human(result, source, human))
