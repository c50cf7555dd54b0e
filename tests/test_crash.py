"""Crash anywhere, converge on rerun: a kill in the middle of a restore and of a GC step, a torn
audit log, and ghost tags left by older versions of direct mode.

The matrices of 50 SIGKILL points per backend are tests/test_crash_api.py and
tests/test_crash_filesystem.py (one file each, so two test workers share them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from pipeline_step.backends.filesystem.layout import GHOST_MIN_AGE, StorageLayout
from pipeline_step.execution.audit import read_audit
from tests.support.cli import ROOT, cli_env, run_cli
from tests.support.crash import CrashMatrix
from tests.support.fault_seed import write_app
from tests.support.images import list_tags, resolve
from tests.support.registry import RegistryFactory
from tests.support.scenario import DiskFullRegistry

pytestmark = pytest.mark.registry  # starts docker-registry itself, not through registry_factory


def test_a_torn_last_line_never_stops_restore_from_reading_the_rest(tmp_path: Path) -> None:
    matrix = CrashMatrix("api", tmp_path, count=12)
    storage, server = matrix.fresh("torn")
    server.start()
    try:
        code = matrix.killed(storage, server, "torn", "intent:4")
        assert code == -9
        (log,) = (tmp_path / "torn" / "audit").glob("*.jsonl")
        whole = log.read_bytes()
        log.write_bytes(whole + b'{"format": 1, "event": "outc')  # a record cut off mid-write
        deletions = list(read_audit(log))
        assert len(deletions) == 4
        restored = run_cli("restore", "--from", str(log), "--registry", server.url)
        assert restored.code == 0, restored.output
    finally:
        server.stop()


def test_a_restore_killed_midway_finishes_on_rerun(registry_factory: RegistryFactory, tmp_path: Path) -> None:
    seed = write_app(tmp_path / "storage", count=20, keep=5)
    registry = registry_factory("restore", storage=tmp_path / "storage")
    before = {tag: resolve(registry.url, seed.repo, tag) for tag in list_tags(registry.url, seed.repo)}
    pruned = run_cli("prune", "--registry", registry.url, *seed.policy, "--audit-dir", str(tmp_path / "audit"))
    assert pruned.code == 0, pruned.output
    (log,) = (tmp_path / "audit").glob("*.jsonl")
    command = [sys.executable, "-m", "tests.support.killpoint", "request-after:12", "--"]
    killed = subprocess.run(
        [*command, "restore", "--from", str(log), "--registry", registry.url],
        capture_output=True, text=True, cwd=ROOT, env=cli_env(), timeout=120,
    )  # fmt: skip
    assert killed.returncode == -9
    rerun = run_cli("restore", "--from", str(log), "--registry", registry.url, "--no-wait")
    assert rerun.code == 0, rerun.output
    assert {tag: resolve(registry.url, seed.repo, tag) for tag in list_tags(registry.url, seed.repo)} == before


def upload_status(url: str) -> int:
    """What the registry answers a blob upload: 202 when it takes pushes, 405 when read-only."""
    return httpx.post(f"{url}/v2/team/app/blobs/uploads/").status_code


def test_a_gc_killed_midway_leaves_a_registry_that_a_rerun_brings_back(tmp_path: Path) -> None:
    """Killed during GC, with the registry read-only: a rerun runs the guard, GC and restart again."""
    with DiskFullRegistry(tmp_path / "registry", size_mib=16) as registry:
        write_app(registry.storage, count=12, keep=5)
        guard = ["--readonly-cmd", registry.ctl("restart", readonly=True), "--restart-cmd", registry.ctl("restart")]
        killed = subprocess.run(
            [sys.executable, "-m", "pipeline_step", "gc", "--gc-cmd", f"{registry.gc_command()} && kill -9 $PPID",
             *guard, "--registry", registry.url],
            capture_output=True, text=True, cwd=ROOT, env=cli_env(), timeout=120,
        )  # fmt: skip
        assert killed.returncode == -9
        assert upload_status(registry.url) == 405, "the kill should leave the registry read-only"
        rerun = run_cli("gc", "--gc-cmd", registry.gc_command(), *guard, "--registry", registry.url, "--no-wait")
        assert rerun.code == 0, rerun.output
        assert upload_status(registry.url) == 202, "after the rerun the registry takes pushes again"


def test_ghost_tags_from_older_versions_are_repaired_and_said_so(tmp_path: Path) -> None:
    """Older direct-mode runs, killed mid-delete, could leave a tag directory without its link."""
    seed = write_app(tmp_path / "storage", count=12, keep=5)
    layout = StorageLayout.open(tmp_path / "storage")
    ghost = Path(layout.tag_dir(seed.repo, "3.3.0-alpha.2"))
    shutil.rmtree(ghost)
    ghost.mkdir()
    old = time.time() - GHOST_MIN_AGE - 5
    os.utime(ghost, (old, old))
    # A tag directory younger than a minute may be a push writing it right now: it is left alone.
    Path(layout.tag_dir(seed.repo, "3.3.0-alpha.99")).mkdir()
    root = str(tmp_path / "storage")
    plan = run_cli("plan", "--storage-root", root, *seed.policy, "--json", str(tmp_path / "p.json"))
    assert plan.code == 0, plan.output
    assert "1 ghost tag to repair" in plan.stdout
    assert ghost.exists(), "a plan changes nothing"
    pruned = run_cli("prune", "--storage-root", root, *seed.policy)
    assert pruned.code == 0, pruned.output
    assert "repaired 1 ghost tag" in pruned.stdout
    assert "3.3.0-alpha.2" not in layout.tags(seed.repo)
    assert "3.3.0-alpha.99" in layout.tags(seed.repo)


def test_a_registry_delete_cut_short_is_finished_from_the_undo_log(
    registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    """The registry's DELETE drops the manifest's revision link before its tags; when its client dies
    in between, the tags stay listed and resolve to nothing. The next run finds the manifest in the
    undo log, puts it back, and plans it again."""
    seed = write_app(tmp_path / "storage", count=12, keep=5)
    registry = registry_factory("cut", storage=tmp_path / "storage")
    audit_dir = tmp_path / "audit"
    victim = "3.3.0-alpha.1"
    digest = seed.tags[victim]
    # A run that wrote its undo record, and a registry DELETE that got as far as the revision link.
    killed = subprocess.run(
        [sys.executable, "-m", "tests.support.killpoint", "intent:1", "--", "prune", "--registry", registry.url,
         "--repo", seed.repo, "--match", f"^{victim}$", "--keep", "0", "--audit-dir", str(audit_dir)],
        capture_output=True, text=True, cwd=ROOT, env=cli_env(), timeout=120,
    )  # fmt: skip
    assert killed.returncode == -9
    layout = StorageLayout.open(tmp_path / "storage")
    os.unlink(layout.revision_link(seed.repo, digest))
    registry.restart(same_port=True)  # drop what the registry cached about it; the same URL
    assert resolve(registry.url, seed.repo, victim) is None and victim in list_tags(registry.url, seed.repo)
    dry = run_cli("prune", "--dry-run", "--registry", registry.url, *seed.policy, "--audit-dir", str(audit_dir))
    assert "would finish an interrupted deletion" in dry.stdout, dry.output
    pruned = run_cli("prune", "--registry", registry.url, *seed.policy, "--audit-dir", str(audit_dir))
    assert pruned.code == 0, pruned.output
    assert "finished an interrupted deletion" in pruned.stdout
    assert victim not in list_tags(registry.url, seed.repo)
