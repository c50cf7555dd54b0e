"""The argparse subclass every command uses: errors are one line and exit 2."""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from pipeline_step.errors import UsageError


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


Subcommands = argparse._SubParsersAction


# command -> (module that registers it, one-line help). Only the module of the command being
# run is imported: `plan` need not load Slack, Jenkins and the rest.
COMMANDS: dict[str, tuple[str, str]] = {
    "plan": ("prune_cmd", "show what a prune would delete; changes nothing"),
    "prune": ("prune_cmd", "delete what the plan says (or --dry-run)"),
    "recover": ("recover_cmd", "free registry disk and get a failed push through"),
    "classify": ("classify_cmd", "say why a push failed and whether pruning can fix it"),
    "gc": ("gc_cmd", "garbage-collect, restart, and measure the space freed"),
    "usage": ("usage_cmd", "tags, manifests and bytes per repository, and what pruning would reclaim; changes nothing"),
    "restore": ("restore_cmd", "undo a prune from its audit log (until garbage collection runs)"),
}


def add_command(commands: Subcommands[Parser], name: str, **kwargs: Any) -> Parser:
    """Add the subcommand ``name`` with its one-line help from :data:`COMMANDS`."""
    parser = commands.add_parser(name, help=COMMANDS[name][1], **kwargs)
    add_verbosity_options(parser, top=False)
    return parser


def add_verbosity_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """-v, -q and --debug, before the command and after it. After it they default to SUPPRESS,
    so leaving them out there keeps what was given before the command."""
    unset: dict[str, Any] = {} if top else {"default": argparse.SUPPRESS}
    count: dict[str, Any] = {"default": 0} if top else unset
    parser.add_argument("-v", "--verbose", action="count", help="more log output (-vv for debug)", **count)
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors on stderr", **unset)
    parser.add_argument("--debug", action="store_true", help="show tracebacks for internal errors", **unset)
