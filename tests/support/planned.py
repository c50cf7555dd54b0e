"""Run the CLI and touch a file the moment planning is done (the executor starts), so a test can act
"after planning", exactly.

    python -m tests.support.planned MARKER_FILE -- COMMAND [flags]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def main(argv: list[str]) -> int:
    marker = Path(argv[0])
    if argv[1] != "--":
        raise SystemExit("usage: python -m tests.support.planned MARKER_FILE -- COMMAND [flags]")
    from pipeline_step.execution import executor  # noqa: PLC0415

    run = executor.Executor.run

    def announced(self: Any, *args: Any, **kwargs: Any) -> Any:
        marker.touch()
        return run(self, *args, **kwargs)

    executor.Executor.run = announced  # type: ignore[method-assign]
    from pipeline_step.cli.main import main as cli_main  # noqa: PLC0415

    return cli_main(argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
