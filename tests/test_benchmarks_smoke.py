"""The benchmark harness cannot rot: its seeder writes a real layout and ``--quick`` runs end to end."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.seed import FastWriter, SeedSpec, seed, tag_name
from tests.support.cli import ROOT
from tests.support.storage_seed import StorageWriter, tree

pytestmark = pytest.mark.registry  # starts docker-registry itself, not through registry_factory


def test_fast_writer_writes_what_the_proven_storage_writer_writes(tmp_path: Path) -> None:
    spec = SeedSpec(2, 3)
    seed(tmp_path / "fast", spec)
    reference = StorageWriter(tmp_path / "reference")
    for name in spec.names():
        for index in range(spec.tags):
            reference.image(name, tag_name(index))
        reference.uploads_dir(name)
    assert tree(tmp_path / "fast", ignore_uploads=False) == tree(tmp_path / "reference", ignore_uploads=False)
    assert FastWriter(tmp_path / "again").layer_digest in str(tree(tmp_path / "fast"))


def test_quick_benchmark_runs_every_mode_and_prints_the_table(tmp_path: Path) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.run",
            "--quick",
            "--scenario",
            "plan-1x2000",
            "--scenario",
            "prune-1990of2000",
            "--workdir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    table = completed.stdout.split("registry-prune benchmark:", 1)[1]
    for mode in ("raw floor (httpx loop)", "api ", "api, httpx transport", "api, --concurrency 8", "direct ("):
        assert re.search(rf"\nplan 1 x 40 tags, one image each +{re.escape(mode)}", table), mode
    assert re.search(r"\nprune all but 10 of 1 x 40 tags, one image each +direct \(--storage-root\) +1 ", table)
    assert "prune: API <= 1.15x the raw floor" in completed.stdout
    assert list(tmp_path.iterdir()) == []  # seeded storages are cleaned up


def test_quick_s3_benchmark_runs_both_modes_and_prints_the_table() -> None:
    """The S3 scenario's harness (moto, a registry on it, both buckets) end to end at toy size."""
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.s3", "--quick", "--repeat", "1"],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=600,
        check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout + completed.stderr
    table = completed.stdout.split("s3 scenario:", 1)[1]
    for action, mode in (("plan", "api"), ("plan", "direct s3"), ("prune", "direct s3"), ("prune", "api")):
        assert re.search(rf"\n{action} +{re.escape(mode)} +[0-9.]+ +[0-9]+ ", table), (action, mode)
    assert "PASS  every run exited 0" in completed.stdout
    assert "direct S3 prune >= 30x faster than the API prune" in completed.stdout
