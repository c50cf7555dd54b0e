"""Run the CLI and write its own peak RSS (KiB) to a file when it exits: the memory of this one
process, whatever else the test process has started.

    python -m tests.support.peak RSS_FILE -- COMMAND [flags]
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    target = Path(argv[0])
    if argv[1] != "--":
        raise SystemExit("usage: python -m tests.support.peak RSS_FILE -- COMMAND [flags]")
    from pipeline_step.cli.main import main as cli_main  # noqa: PLC0415

    try:
        return cli_main(argv[2:])
    finally:
        target.write_text(str(high_water_kib()))


def high_water_kib() -> int:
    """VmHWM: this program's own peak (getrusage's maxrss also counts what the parent had at fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
