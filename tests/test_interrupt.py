"""SIGTERM (a Jenkins abort) during a prune: finish in-flight DELETEs, write a true partial report, exit 130."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from tests.support.cli import ROOT, policy_args, run_cli
from tests.support.images import list_tags
from tests.support.proxy import Fault, RecordingProxy
from tests.support.registry import RegistryFactory
from tests.support.storage_seed import StorageWriter

REPO = "team/app"
TAGS = 120


def test_sigterm_mid_prune_leaves_a_correct_partial_report_and_a_rerun_finishes(
    registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    writer = StorageWriter(tmp_path / "seeded")
    for n in range(1, TAGS + 1):
        writer.image(REPO, f"2.0.0-alpha.{n}")
    registry = registry_factory("interrupt", storage=tmp_path / "seeded")
    process: subprocess.Popen[str] | None = None
    deletes = 0
    lock = threading.Lock()

    def abort_after_20_deletes(method: str, path: str, number: int) -> Fault | None:
        nonlocal deletes
        if method == "DELETE" and "sha256:0000" not in path:
            with lock:
                deletes += 1
                if deletes == 20 and process is not None:
                    os.kill(process.pid, signal.SIGTERM)
        return None

    report_path = tmp_path / "partial.json"
    with RecordingProxy(registry.url, schedule=abort_after_20_deletes) as proxy:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pipeline_step",
                "prune",
                *policy_args(proxy.url, REPO),
                "--json",
                str(report_path),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "SIGTERM received" in stderr
    report = json.loads(report_path.read_text())
    assert report["outcome"] == "interrupted"
    remaining = set(list_tags(registry.url, REPO))
    deleted = {entry["tag"] for entry in report["deleted"]}
    not_attempted = {entry["tag"] for entry in report["not_attempted"]}
    # At most the in-flight requests (concurrency 4) finished after the signal.
    assert 20 <= len(deleted) <= 24
    assert deleted.isdisjoint(remaining)
    assert not_attempted <= remaining
    assert len(deleted) + len(not_attempted) == TAGS - 10
    assert report["failed"] == []
    # A rerun finishes the job.
    rerun = run_cli("prune", "--registry", registry.url, "--repo", REPO, "--match", "alpha", "--keep", "10")
    assert rerun.code == 0, rerun.output
    assert sorted(list_tags(registry.url, REPO)) == sorted(f"2.0.0-alpha.{n}" for n in range(TAGS - 9, TAGS + 1))
