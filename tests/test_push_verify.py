"""The stale blob cache after GC, and why recover restarts the registry and verifies pushes.

After garbage collection the running registry's in-memory blob cache still
answers HEAD 200 for blobs it deleted, so a client skips uploading them and the
pushed image is broken. `recover` reads every blob back after the push; with a
restart command it restarts and pushes again, without one it fails (exit 11).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline_step.integrations.push import ImageRef, verify_image
from pipeline_step.registry.http.choose import open_client
from pipeline_step.registry.http.session import RetryPolicy
from tests.support.cli import policy_args, run_cli
from tests.support.scenario import DiskFullRegistry, OciLayout

pytestmark = pytest.mark.registry  # starts docker-registry itself, not through registry_factory

REPO = "team/app"


@pytest.fixture
def old_build_pruned_and_collected(tmp_path: Path, registry_line: str) -> Iterator[tuple[DiskFullRegistry, OciLayout]]:
    """alpha.1..3 pushed; then a rebuild of alpha.1's layers is prepared as 'rebuild'."""
    with DiskFullRegistry(tmp_path / "registry", size_mib=32, line=registry_line) as registry:
        layout = OciLayout(tmp_path / "oci")
        for n in (1, 2, 3):
            layout.add(f"1.0.0-alpha.{n}", 256 * 1024)
            subprocess.run(layout.push_command(f"1.0.0-alpha.{n}", registry.host, REPO), shell=True, check=True)
        layout.add("1.0.0-rebuild", 0, reuse_layers_of="1.0.0-alpha.1")
        yield registry, layout


def recover(
    registry: DiskFullRegistry, layout: OciLayout, tmp_path: Path, *extra: str
) -> tuple[int, dict[str, object]]:
    report = tmp_path / "report.json"
    result = run_cli(
        "recover",
        "--force",
        *policy_args(registry.url, REPO, keep=1),
        "--gc-cmd",
        registry.gc_command(),
        "--push-cmd",
        layout.push_command("1.0.0-rebuild", registry.host, REPO),
        "--push-backoff",
        "0.1",
        "--json",
        str(report),
        *extra,
    )
    return result.code, json.loads(report.read_text())


def test_without_a_restart_the_broken_push_is_caught(
    old_build_pruned_and_collected: tuple[DiskFullRegistry, OciLayout], tmp_path: Path
) -> None:
    registry, layout = old_build_pruned_and_collected
    code, report = recover(registry, layout, tmp_path, "--allow-live-gc")
    assert code == 11
    assert report["outcome"] == "push-failed"
    push = report["push"]
    assert isinstance(push, dict) and push["succeeded"] is True and push["verified"] is False
    assert any("blob" in problem for problem in push["problems"])
    # The registry's HEAD lies (stale cache); reading the data tells the truth.
    with open_client(registry.url, retry=RetryPolicy(attempts=1)) as client:
        verdict = verify_image(client, ImageRef(REPO, "1.0.0-rebuild"))
    assert not verdict.ok


def test_with_a_restart_recover_pushes_again_and_the_image_is_whole(
    old_build_pruned_and_collected: tuple[DiskFullRegistry, OciLayout], tmp_path: Path
) -> None:
    registry, layout = old_build_pruned_and_collected
    code, report = recover(registry, layout, tmp_path, "--allow-live-gc", "--restart-cmd", registry.ctl("restart"))
    assert code == 0, report
    assert report["push_succeeded"] is True
    with open_client(registry.url) as client:
        verdict = verify_image(client, ImageRef(REPO, "1.0.0-rebuild"))
    assert verdict.ok and verdict.checked_blobs == 3
