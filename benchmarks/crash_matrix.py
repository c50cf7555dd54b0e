"""The crash-anywhere matrix at scale: many more SIGKILL points than CI runs.

    python -m benchmarks.crash_matrix [--points 300] [--backend api|filesystem|both] [--seed N]

Each point is checked as in tests/test_crash_*.py (tests/support/crash.py): nothing kept is
lost, every deletion is in the undo log, the lock is free, a rerun converges. Prints one line
per backend with the points run, the time, and the first failure if any (exit 1).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from tests.support.crash import KINDS, SEED, CrashMatrix, draw


def run(backend: str, points: int, seed: int) -> bool:
    with tempfile.TemporaryDirectory(prefix=f"crash-{backend}-") as workdir:
        matrix = CrashMatrix(backend, Path(workdir))
        counts = matrix.prepare()
        drawn = draw(counts, KINDS[backend], points, seed=seed)
        started = time.monotonic()
        for number, point in enumerate(drawn, start=1):
            try:
                matrix.check(point, number)
            except AssertionError as exc:
                print(f"{backend}: FAIL at point {number} ({point.spec}): {exc}")
                return False
        elapsed = time.monotonic() - started
        print(f"{backend}: {len(drawn)} kill points passed in {elapsed:.0f}s (events of a whole run: {counts})")
        return True


def main() -> int:
    parser = argparse.ArgumentParser(prog="crash_matrix")
    parser.add_argument("--points", type=int, default=300)
    parser.add_argument("--backend", choices=("api", "filesystem", "both"), default="both")
    parser.add_argument("--seed", type=int, default=SEED + 1)
    args = parser.parse_args()
    backends = ("api", "filesystem") if args.backend == "both" else (args.backend,)
    return 0 if all(run(backend, args.points, args.seed) for backend in backends) else 1


if __name__ == "__main__":
    sys.exit(main())
