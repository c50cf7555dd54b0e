"""Run the CLI and hold it just before its first deletion until a file appears: a run that is
deterministically "in the middle" while another one starts (the lease and lock tests).

    python -m tests.support.pause GATE -- COMMAND [flags]

Writes ``GATE.ready`` once the run holds its locks and is about to delete, then waits for
``GATE`` to exist (or is killed there).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any


def install(gate: Path) -> None:
    from pipeline_step.execution import executor  # noqa: PLC0415

    run = executor.Executor.run

    def paused(self: Any, *args: Any, **kwargs: Any) -> Any:
        gate.with_name(gate.name + ".ready").write_text("ready")
        while not gate.exists():
            time.sleep(0.02)  # polling for the test's signal
        return run(self, *args, **kwargs)

    executor.Executor.run = paused  # type: ignore[method-assign]


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] != "--":
        raise SystemExit("usage: python -m tests.support.pause GATE -- COMMAND [flags]")
    install(Path(argv[0]))
    from pipeline_step.cli.main import main as cli_main  # noqa: PLC0415

    return cli_main(argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
