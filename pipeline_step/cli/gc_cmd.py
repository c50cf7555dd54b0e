"""``registry-prune gc``: not registered yet (work in progress)."""

from __future__ import annotations

from pipeline_step.cli.parser import Parser, Subcommands


def register(commands: Subcommands[Parser]) -> None:
    return None
