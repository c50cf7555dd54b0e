"""Entry point: ``registry-prune COMMAND [flags]``. See ``--help`` and the README."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from typing import Sequence

from pipeline_step import __version__
from pipeline_step.cli.parser import COMMANDS, Parser, add_command
from pipeline_step.cli.runtime import Runtime, configure_logging
from pipeline_step.errors import ExitCode, PruneError
from pipeline_step.redact import redact

EPILOG = """exit codes:
  0    success
  1    unexpected internal error (a bug; rerun with --debug and report it)
  2    bad flags, configuration or input; nothing was changed
  3    the registry refuses deletes (storage.delete.enabled is false, or read-only mode)
  4    registry unreachable, TLS, authentication or protocol error
  5    partial: some deletions failed, a repository was left alone, or (restore) images were not restored
  6    another run holds the registry lock (--no-wait)
  10   pruning the registry cannot fix this failure (classify, recover)
  11   the push still fails after recovery (recover)
  12   garbage collection or the restart command failed (gc, recover)
  130  interrupted by SIGINT/SIGTERM; the partial report was written
"""


def _chosen_command(argv: Sequence[str]) -> str | None:
    return next((word for word in argv if word in COMMANDS), None)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser, with full arguments for the command in ``argv`` (every command when None)."""
    parser = Parser(
        prog="registry-prune",
        description="Safe retention pruning, garbage collection and push recovery for Docker Registry v2.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"registry-prune {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors on stderr")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for internal errors")
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


def main(argv: Sequence[str] | None = None) -> int:
    runtime = Runtime()
    debug = False
    try:
        words = list(sys.argv[1:] if argv is None else argv)
        args = build_parser(words).parse_args(words)
        debug = args.debug
        runtime.verbosity = -1 if args.quiet else args.verbose
        configure_logging(runtime.verbosity)
        runtime.install_signal_handlers()
        code: int = args.handler(args, runtime)
        return code
    except PruneError as exc:
        sys.stderr.write(redact(f"registry-prune: error: {exc}") + "\n")
        return int(exc.exit_code)
    except BrokenPipeError:
        # `registry-prune plan | head`: the reader left; exit like a tool killed by SIGPIPE.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        sys.stderr.write("registry-prune: interrupted\n")
        return int(ExitCode.INTERRUPTED)
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else 0
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        if debug:
            sys.stderr.write(redact(traceback.format_exc()))
        sys.stderr.write(
            redact(
                f"registry-prune: internal error: {type(exc).__name__}: {exc} "
                "(rerun with --debug for a traceback and report it)"
            )
            + "\n"
        )
        return int(ExitCode.FAILURE)
