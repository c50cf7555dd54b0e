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
# run is imported: `plan` need not load Slack, Jenkins and the rest (half a second, 20 MB).
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
    return commands.add_parser(name, help=COMMANDS[name][1], **kwargs)
