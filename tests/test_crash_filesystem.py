"""A prune SIGKILLed at 50 points drawn deterministically (filesystem backend): nothing kept is lost,
every deletion is in the undo log, the lock is free, and a rerun converges (tests/support/crash.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.crash import KINDS, POINTS, SEED, CrashMatrix, draw

pytestmark = pytest.mark.registry  # starts docker-registry itself, not through registry_factory


def test_a_prune_killed_anywhere_loses_nothing_kept_and_a_rerun_converges(tmp_path: Path) -> None:
    matrix = CrashMatrix("filesystem", tmp_path)
    counts = matrix.prepare()
    points = draw(counts, KINDS["filesystem"], POINTS, seed=SEED)
    assert len(points) == POINTS, f"too few events to draw from: {counts}"
    for number, point in enumerate(points, start=1):
        matrix.check(point, number)
