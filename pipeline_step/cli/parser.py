"""The argparse subclass every command uses: errors are one line and exit 2."""

from __future__ import annotations

import argparse
from typing import NoReturn

from pipeline_step.errors import UsageError


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


Subcommands = argparse._SubParsersAction
