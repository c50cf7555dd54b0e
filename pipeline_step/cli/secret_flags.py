"""argparse actions for secrets: refuse them as flag values, or register them for redaction on sight."""

from __future__ import annotations

import argparse
from typing import Any

from pipeline_step.errors import UsageError
from pipeline_step.support.redact import register_secret


def add_refused_flag(group: argparse._ArgumentGroup, flag: str, what: str, hint: str) -> None:
    """A hidden ``flag`` that always fails: a secret given as a value shows up in process listings."""

    class Refuse(argparse.Action):
        def __call__(
            self,
            parser: argparse.ArgumentParser,
            namespace: argparse.Namespace,
            values: Any,
            option_string: str | None = None,
        ) -> None:
            raise UsageError(
                f"refusing {flag}: a {what} on the command line shows up in process listings and build logs",
                hint=hint,
            )

    group.add_argument(flag, nargs="?", action=Refuse, help=argparse.SUPPRESS)


class SecretValue(argparse.Action):
    """Stores the value and registers it for redaction at once, before anything can echo it."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        register_secret(str(values))
        setattr(namespace, self.dest, values)
