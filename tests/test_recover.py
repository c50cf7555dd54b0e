"""recover: a registry whose disk filled up, recovered end to end.

Real parts only: Debian's docker-registry on a 64 MiB tmpfs, skopeo pushing
until the registry answers 500, the real `garbage-collect`, a restart through
a shell command, and a local stand-in for Slack's incoming webhook.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.cli import CliResult, run_cli
from tests.support.fake_slack import FakeSlack
from tests.support.fault_seed import write_app
from tests.support.images import list_tags, resolve
from tests.support.registry import RegistryFactory
from tests.support.scenario import DiskFullRegistry, OciLayout, fill_until_500, pull_blobs

pytestmark = pytest.mark.registry  # starts docker-registry itself, not through registry_factory

LAYER = 4 * 1024 * 1024
REPO = "team/app"


@dataclass
class FullDisk:
    registry: DiskFullRegistry
    layout: OciLayout
    failed_tag: str
    failed_log: str
    protected: dict[str, str]  # tag -> digest


def recover(full_disk: FullDisk, report: Path, *extra: str, env: dict[str, str] | None = None) -> CliResult:
    """``recover`` on the full registry with the policy every test here shares: keep the newest 5 alphas."""
    registry = full_disk.registry
    policy = ("--registry", registry.url, "--repo", REPO, "--match", "alpha", "--keep", "5")
    gc = ("--gc-cmd", registry.gc_command(), "--stop-cmd", registry.ctl("stop"), "--start-cmd", registry.ctl("start"))
    return run_cli("recover", *policy, *gc, "--json", str(report), *extra, env=env)


def full_recovery_flags(full_disk: FullDisk) -> tuple[str, ...]:
    """Push retry, restart and the low-disk trigger: what a real post-push recovery is given."""
    registry = full_disk.registry
    return (
        "--push-cmd",
        full_disk.layout.push_command(full_disk.failed_tag, registry.host, REPO),
        "--push-backoff",
        "0.2",
        "--disk",
        f"path:{registry.storage}",
        "--min-free",
        "20%",
    )


@pytest.fixture
def full_disk(tmp_path: Path, registry_line: str) -> Iterator[FullDisk]:
    with DiskFullRegistry(tmp_path / "registry", line=registry_line) as registry:
        layout = OciLayout(tmp_path / "oci")
        protected = {}
        for tag in ("3.1.0", "3.2.0"):
            layout.add(tag, 64 * 1024)
            subprocess.run(layout.push_command(tag, registry.host, REPO), shell=True, check=True)
            protected[tag] = resolve(registry.url, REPO, tag) or ""
        failed_tag, failed_log = fill_until_500(registry, layout, REPO, LAYER)
        assert "received unexpected HTTP status: 500 Internal Server Error" in failed_log
        yield FullDisk(registry, layout, failed_tag, failed_log, protected)


def test_recover_frees_space_restarts_and_gets_the_push_through(full_disk: FullDisk, tmp_path: Path) -> None:
    registry, layout = full_disk.registry, full_disk.layout
    assert registry.disk is not None
    before = registry.disk.free_bytes()
    report_path = tmp_path / "report.json"
    with FakeSlack() as slack:
        result = recover(
            full_disk,
            report_path,
            *full_recovery_flags(full_disk),
            "--slack-webhook",
            slack.webhook_url,
            env={"BUILD_URL": "https://jenkins.example/job/app/7/", "JOB_NAME": "app", "BUILD_NUMBER": "7"},
        )
        posts = slack.posts
    assert result.code == 0, result.output
    after = registry.disk.free_bytes()
    report = json.loads(report_path.read_text())

    # The push went through and the image on the registry is exactly the source.
    assert report["outcome"] == "recovered" and report["push_succeeded"] is True
    assert report["push"]["verified"] is True
    assert full_disk.failed_tag in list_tags(registry.url, REPO)
    pulled = pull_blobs(registry.host, REPO, full_disk.failed_tag)
    assert pulled == layout.blobs[full_disk.failed_tag]

    # Protected tags untouched; only old alphas went.
    tags = list_tags(registry.url, REPO)
    for tag, digest in full_disk.protected.items():
        assert resolve(registry.url, REPO, tag) == digest
    alphas = sorted((t for t in tags if "alpha" in t), key=lambda t: int(t.rsplit(".", 1)[1]))
    newest = int(full_disk.failed_tag.rsplit(".", 1)[1])
    assert alphas == [f"3.3.0-alpha.{n}" for n in range(newest - 5, newest + 1)]
    deleted = {e["tag"] for e in report["deleted"]}
    assert deleted == {f"3.3.0-alpha.{n}" for n in range(1, newest - 5)}

    # The report's disk figures are what df says, before and after.
    assert report["trigger"] == "low-disk"
    assert report["free_bytes_before"] == before
    assert report["free_bytes_final"] == after
    assert report["freed_bytes"] > (newest - 6) * LAYER * 0.9
    assert report["predicted_reclaim_bytes"] >= (newest - 6) * LAYER
    assert report["gc_ran"] is True  # the undo window is closed
    assert "undo window" in result.stdout

    # Slack received exactly one message, about this build.
    assert len(posts) == 1
    message = json.dumps(posts[0])
    assert "https://jenkins.example/job/app/7/" in message
    assert full_disk.failed_tag not in {e["tag"] for e in report["deleted"]}


def test_agent_disk_full_log_means_recover_deletes_nothing(full_disk: FullDisk, tmp_path: Path) -> None:
    registry = full_disk.registry
    log = tmp_path / "console.log"
    log.write_text(
        "+ docker build -t app .\nERROR: failed to solve: write /var/lib/docker/tmp/buildkit-mount12/x: "
        "no space left on device\n"
    )
    before = list_tags(registry.url, REPO)
    result = recover(full_disk, tmp_path / "r.json", "--console-log", str(log), "--disk", f"path:{registry.storage}")
    assert result.code == 10, result.output
    assert "cannot help" in result.stdout
    assert list_tags(registry.url, REPO) == before
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["outcome"] == "cannot-help" and report["deleted"] == []


def test_seed_log_triggers_and_dry_run_changes_nothing(full_disk: FullDisk, tmp_path: Path) -> None:
    registry = full_disk.registry
    log = tmp_path / "console.log"
    log.write_text(full_disk.failed_log)
    before = list_tags(registry.url, REPO)
    assert registry.disk is not None
    free = registry.disk.free_bytes()
    result = recover(full_disk, tmp_path / "r.json", "--dry-run", "--console-log", str(log))
    assert result.code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["trigger"] == "registry-500"
    assert report["outcome"] == "dry-run" and report["gc_ran"] is False
    assert len(report["deleted"]) == len(before) - 2 - 5
    # The tags it would delete are named, not only counted (the report has them all).
    named = [f"{REPO}:{entry['tag']}" for entry in report["deleted"]]
    assert f"dry run: would delete {len(named)} tags: {', '.join(named[:20])}" in result.stdout
    assert list_tags(registry.url, REPO) == before
    assert registry.disk.free_bytes() == free
    assert os.path.exists(registry.pidfile)


def test_recover_in_direct_storage_mode(full_disk: FullDisk, tmp_path: Path) -> None:
    """The same recovery, planning and deleting on the registry's storage directory (O(tags)),
    then GC, restart and the push through the API."""
    registry = full_disk.registry
    report_path = tmp_path / "report.json"
    result = recover(full_disk, report_path, "--storage-root", str(registry.storage), *full_recovery_flags(full_disk))
    assert result.code == 0, result.output
    report = json.loads(report_path.read_text())
    assert report["outcome"] == "recovered" and report["push"]["verified"] is True
    newest = int(full_disk.failed_tag.rsplit(".", 1)[1])
    alphas = [t for t in list_tags(registry.url, REPO) if "alpha" in t]
    assert sorted(alphas, key=lambda t: int(t.rsplit(".", 1)[1])) == [
        f"3.3.0-alpha.{n}" for n in range(newest - 5, newest + 1)
    ]
    for tag, digest in full_disk.protected.items():
        assert resolve(registry.url, REPO, tag) == digest
    # Catalog-wide prediction is the default in direct mode, and it matches what GC freed.
    assert report["predicted_reclaim_bytes"] <= report["freed_bytes"] * 1.05
    assert report["freed_bytes"] <= report["predicted_reclaim_bytes"] * 1.05
    assert "restart the registry" not in result.stdout  # recover restarted it


def test_a_failed_gc_still_retries_the_push_once_the_restart_ran(
    registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    """GC failing must not leave the build's push unretried: the restart ran, the registry takes pushes."""
    seed = write_app(tmp_path / "storage", count=14, keep=10)
    registry = registry_factory("gc-fails", storage=tmp_path / "storage")
    pushed = tmp_path / "pushed"
    restarted = tmp_path / "restarted"
    report_path = tmp_path / "report.json"
    result = run_cli(
        "recover", "--force", "--registry", registry.url, *seed.policy,
        "--gc-cmd", "echo 'no space left on device' >&2; exit 1",
        "--readonly-cmd", "true", "--restart-cmd", f"touch {restarted}",
        "--push-cmd", f"touch {pushed}",
        "--json", str(report_path),
    )  # fmt: skip
    assert restarted.exists() and pushed.exists(), result.output
    report = json.loads(report_path.read_text())
    assert report["push_attempts"] == 1 and report["push_succeeded"] is True
    assert (report["outcome"], report["exit_code"]) == ("recovered", 0), result.output
    assert any("garbage collection failed, but the push went through" in note for note in report["notes"])
