"""Replicas on one bucket, and garbage collection on S3.

Two docker-registry processes share a bucket (and http.secret), each with its
own in-memory blob cache. ``recover`` guards GC on every replica, runs GC once,
restarts every replica and waits for each, and verifies the pushed image
through every replica's URL: a replica left out of the restart list keeps a
stale cache, a push through it skips layers GC deleted, and the verification
names that replica and fails. ``usage`` on the bucket predicts what
``garbage-collect`` frees, within 5%.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline_step.integrations.push import ImageRef, verify_replicas
from pipeline_step.registry.http.choose import open_client
from tests.support.cli import ROOT, run_cli
from tests.support.fault_seed import write_app
from tests.support.replicas import Replica
from tests.support.s3 import S3Server
from tests.support.scenario import OciLayout

REPO = "team/app"
CONSOLE_LOG = ROOT / "tests" / "fixtures" / "seed-docker-push-500.log"


@pytest.fixture
def fleet(s3_server: S3Server, tmp_path: Path) -> Iterator[tuple[Replica, Replica, OciLayout]]:
    """Replicas a and b on one bucket; alpha.1..3 pushed through b (its cache knows their blobs),
    and a rebuild reusing alpha.1's layers prepared."""
    s3_server.create_bucket("fleet")
    a = Replica(tmp_path / "a", s3_server.registry_parameters("fleet")).start()
    b = Replica(tmp_path / "b", s3_server.registry_parameters("fleet")).start()
    try:
        layout = OciLayout(tmp_path / "oci")
        for n in (1, 2, 3):
            layout.add(f"1.0.0-alpha.{n}", 128 * 1024)
            subprocess.run(layout.push_command(f"1.0.0-alpha.{n}", b.host, REPO), shell=True, check=True)
        layout.add("1.0.0-rebuild", 0, reuse_layers_of="1.0.0-alpha.1")
        yield a, b, layout
    finally:
        a.stop()
        b.stop()


def recover(a: Replica, b: Replica, layout: OciLayout, tmp_path: Path, *guard: str) -> tuple[int, dict[str, object]]:
    report = tmp_path / "recover.json"
    result = run_cli(
        "recover", "--console-log", str(CONSOLE_LOG), "--registry", a.url, "--replica-url", b.url,
        "--repo", REPO, "--match", "alpha", "--keep", "1", "--gc-cmd", a.gc_command(), *guard,
        "--push-cmd", layout.push_command("1.0.0-rebuild", b.host, REPO),  # the load balancer sent it to b
        "--image", f"{REPO}:1.0.0-rebuild", "--push-backoff", "0.1", "--json", str(report),
    )  # fmt: skip
    assert report.exists(), result.output
    return result.code, json.loads(report.read_text())


def test_a_replica_left_out_of_the_restart_list_is_caught_by_the_verification(
    fleet: tuple[Replica, Replica, OciLayout], tmp_path: Path
) -> None:
    a, b, layout = fleet
    code, report = recover(a, b, layout, tmp_path, "--readonly-cmd", a.ctl("restart", readonly=True),
                           "--restart-cmd", a.ctl("restart"))  # fmt: skip
    assert code == 11, report
    assert report["trigger"] == "registry-500"
    push = report["push"]
    assert isinstance(push, dict) and push["succeeded"] is True and push["verified"] is False
    problems = push["problems"]
    assert any(f"replica {b.url} is stale" in problem for problem in problems), problems
    assert not any(f"replica {a.url} is stale" in problem for problem in problems)


def test_recover_restarts_every_replica_and_verifies_the_push_through_each(
    fleet: tuple[Replica, Replica, OciLayout], s3_server: S3Server, tmp_path: Path
) -> None:
    a, b, layout = fleet
    config = s3_server.write_registry_config(tmp_path / "registry-config.yml", "fleet")
    code, report = recover(
        a, b, layout, tmp_path,
        "--registry-config", str(config),  # prune the bucket directly, inside the guard's window
        "--readonly-cmd", a.ctl("restart", readonly=True), "--readonly-cmd", b.ctl("restart", readonly=True),
        "--restart-cmd", a.ctl("restart"), "--restart-cmd", b.ctl("restart"),
    )  # fmt: skip
    assert code == 0, report
    push = report["push"]
    assert isinstance(push, dict) and push["verified"] is True
    assert push["checked_blobs"] == 6  # three blobs, read back through each of the two replicas
    assert any("no disk to fill" in note for note in report["notes"])  # type: ignore[union-attr]
    with open_client(a.url) as first, open_client(b.url) as second:
        assert verify_replicas([first, second], ImageRef(REPO, "1.0.0-rebuild")).ok
    # On S3 the disk probe is refused in one line.
    refused = run_cli("recover", "--force", "--registry", a.url, "--registry-config", str(config),
                      "--repo", REPO, "--disk", "path:/", "--dry-run")  # fmt: skip
    assert refused.code == 2 and "object storage has no disk to fill" in refused.stderr


def blob_bytes(s3: S3Server, bucket: str) -> int:
    client = s3.client()
    return sum(
        item["Size"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="docker/registry/v2/blobs/")
        for item in page.get("Contents", ())
    )


def test_usage_on_s3_predicts_what_garbage_collect_frees(s3_server: S3Server, tmp_path: Path) -> None:
    seed = write_app(tmp_path / "seed", count=40, keep=10)
    s3_server.create_bucket("gc-bucket")
    s3_server.upload_tree(seed.storage, "gc-bucket")
    config = s3_server.write_registry_config(tmp_path / "registry-config.yml", "gc-bucket")
    usage = run_cli("usage", "--registry-config", str(config), *seed.policy, "--json", str(tmp_path / "usage.json"))
    assert usage.code == 0, usage.output
    predicted = json.loads((tmp_path / "usage.json").read_text())["reclaimable_bytes"]
    assert predicted > 0
    pruned = run_cli("prune", "--registry-config", str(config), *seed.policy, "--json", str(tmp_path / "prune.json"))
    assert pruned.code == 0, pruned.output
    registry = Replica(tmp_path / "registry", s3_server.registry_parameters("gc-bucket")).start()
    try:
        before = blob_bytes(s3_server, "gc-bucket")
        gc = run_cli(
            "gc", "--registry", registry.url, "--readonly-cmd", registry.ctl("restart", readonly=True),
            "--restart-cmd", registry.ctl("restart"), "--gc-cmd", registry.gc_command(),
            "--predicted-from", str(tmp_path / "prune.json"), "--json", str(tmp_path / "gc.json"),
        )  # fmt: skip
        assert gc.code == 0, gc.output
        freed = before - blob_bytes(s3_server, "gc-bucket")
    finally:
        registry.stop()
    assert abs(freed - predicted) <= 0.05 * predicted, (freed, predicted)
    assert json.loads((tmp_path / "prune.json").read_text())["predicted_reclaim_bytes"] == predicted
    report = json.loads((tmp_path / "gc.json").read_text())
    assert report["gc"]["ok"] is True and report["gc"]["blobs_deleted"] > 0
