"""A direct S3 prune SIGKILLed at 50 points drawn deterministically, before and after its
DeleteObjects batches (a step sends up to three: a tag's index keys, its current link, the
revision) and right after undo records: nothing kept is lost, no listed tag is left without its
link, every deletion is in the undo log (restore replays it), the lock and lease are free, and a
rerun converges (tests/support/crash.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.crash import KINDS, S3_POINTS, SEED, CrashMatrix, draw

pytestmark = pytest.mark.registry  # starts docker-registry and the S3 server itself


def test_a_direct_s3_prune_killed_anywhere_loses_nothing_kept_and_a_rerun_converges(tmp_path: Path) -> None:
    matrix = CrashMatrix("s3", tmp_path, count=40)  # 35 deletions: enough events for 50 distinct points
    try:
        counts = matrix.prepare()
        points = draw(counts, KINDS["s3"], S3_POINTS, seed=SEED)
        assert len(points) == S3_POINTS, f"too few events to draw from: {counts}"
        for number, point in enumerate(points, start=1):
            matrix.check(point, number)
    finally:
        matrix.close()
