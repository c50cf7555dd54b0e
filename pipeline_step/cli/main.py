"""Entry point: ``registry-prune COMMAND [flags]``. See ``--help`` and the README."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from types import ModuleType
from typing import Sequence

from pipeline_step import __version__
from pipeline_step.cli.invocation import Invocation
from pipeline_step.cli.parser import COMMANDS, Parser, add_command, add_verbosity_options
from pipeline_step.cli.runtime import Runtime, configure_logging
from pipeline_step.errors import EXIT_CODES, InterruptedRunError, PruneError
from pipeline_step.operations.outcome import Outcome
from pipeline_step.reports.envelope import Report
from pipeline_step.support.redact import redact


def exit_code_epilog() -> str:
    """The exit-code table of ``--help``, from :data:`~pipeline_step.errors.EXIT_CODES`."""
    return "exit codes:\n" + "".join(f"  {int(code):<4} {meaning}\n" for code, meaning in EXIT_CODES.items())


def _chosen_command(argv: Sequence[str]) -> str | None:
    return next((word for word in argv if word in COMMANDS), None)


def _command_module(command: str) -> ModuleType:
    return importlib.import_module(f"pipeline_step.cli.{COMMANDS[command][0]}")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser, with full arguments for the command in ``argv`` (every command when None)."""
    parser = Parser(
        prog="registry-prune",
        description="Safe retention pruning, garbage collection and push recovery for Docker Registry v2.",
        epilog=exit_code_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"registry-prune {__version__}")
    add_verbosity_options(parser, top=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    chosen = _chosen_command(argv) if argv is not None else None
    modules = list(dict.fromkeys(module for module, _ in COMMANDS.values()))
    for module in modules:
        if chosen is None or COMMANDS[chosen][0] == module:
            importlib.import_module(f"pipeline_step.cli.{module}").register(commands)
    for name in COMMANDS:
        if name not in commands.choices:
            add_command(commands, name)
    # argparse lists commands in the order they were added; keep the table's order.
    commands._choices_actions.sort(key=lambda action: list(COMMANDS).index(action.dest))
    return parser


def _json_target(words: Sequence[str]) -> str | None:
    """``--json FILE`` as given on the command line, for a report of flags that did not parse."""
    for index, word in enumerate(words):
        if word == "--json" and index + 1 < len(words):
            return words[index + 1]
        if word.startswith("--json="):
            return word.split("=", 1)[1]
    return None


def _invocation(command: str | None, json_target: str | None) -> Invocation[Report] | None:
    if command is None:
        return None
    report_type: type[Report] = _command_module(command).REPORT
    return Invocation(command, report_type, json_target)


def _fail(invocation: Invocation[Report] | None, outcome: Outcome) -> None:
    """Write the failure report unless the command already wrote its own."""
    if invocation is None or invocation.written:
        return
    try:
        invocation.fail(outcome)
    except PruneError as exc:  # e.g. --json into a directory that does not exist
        sys.stderr.write(redact(f"registry-prune: error: {exc}") + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    runtime = Runtime()
    debug = False
    words = list(sys.argv[1:] if argv is None else argv)
    invocation: Invocation[Report] | None = None
    try:
        try:
            args = build_parser(words).parse_args(words)
        except PruneError:
            invocation = _invocation(_chosen_command(words), _json_target(words))
            raise
        debug = args.debug
        runtime.verbosity = -1 if args.quiet else args.verbose
        configure_logging(runtime.verbosity)
        runtime.install_signal_handlers()
        invocation = _invocation(args.command, getattr(args, "json", None))
        code: int = args.handler(args, runtime, invocation)
        return code
    except PruneError as exc:
        sys.stderr.write(redact(f"registry-prune: error: {exc}") + "\n")
        _fail(invocation, Outcome.of_error(exc))
        return int(exc.exit_code)
    except BrokenPipeError:
        # `registry-prune plan | head`: the reader left; exit like a tool killed by SIGPIPE.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        sys.stderr.write("registry-prune: interrupted\n")
        error = InterruptedRunError("interrupted (a second SIGINT); in-flight requests were abandoned")
        _fail(invocation, Outcome.of_error(error))
        return int(error.exit_code)
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else 0
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        if debug:
            sys.stderr.write(redact(traceback.format_exc()))
        outcome = Outcome.internal_error(exc)
        sys.stderr.write(redact(f"registry-prune: {outcome.message}") + "\n")
        _fail(invocation, outcome)
        return int(outcome.exit_code)
