"""A prune SIGKILLed at points drawn deterministically (api backend, on each registry line): nothing
kept is lost, every deletion is in the undo log, the lock is free, and a rerun converges, manifests
included (tests/support/crash.py)."""

from __future__ import annotations

from pathlib import Path

from tests.support.crash import KINDS, POINTS, SEED, CrashMatrix, draw

PER_LINE = POINTS * 3 // 5  # 30 on each line: together more than one line had alone


def test_a_prune_killed_anywhere_loses_nothing_kept_and_a_rerun_converges(tmp_path: Path, registry_line: str) -> None:
    matrix = CrashMatrix("api", tmp_path, line=registry_line)
    counts = matrix.prepare()
    points = draw(counts, KINDS["api"], PER_LINE, seed=SEED)
    assert len(points) == PER_LINE, f"too few events to draw from: {counts}"
    for number, point in enumerate(points, start=1):
        matrix.check(point, number)
