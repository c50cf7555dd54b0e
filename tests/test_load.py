"""Load: ten prunes at once against one registry, and a prune racing a pusher.

* Ten ``prune`` processes start together. The lock serializes them; each
  ends 0 (waiting) or 0/6 (``--no-wait``); the union of what they report
  deleted is exactly the single plan, and no digest is sent a DELETE twice.
* A prune of 20 repositories runs while a pusher, from the moment planning
  is done, re-pushes tags the plan deletes and pushes new ones. Nothing the
  pusher pushed is lost: the re-check before each DELETE skips the moved
  tags. Through the API at 20 x 200 tags, and directly at 20 x 5,000.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.seed import SeedSpec, seed
from tests.support.cli import ROOT, cli_env, run_cli
from tests.support.images import image_documents, list_tags, resolve, sha256
from tests.support.proxy import RecordingProxy
from tests.support.pushclient import PushClient
from tests.support.registry import RegistryFactory, RegistryServer

PROBE = "sha256:" + "0" * 64  # the executor's "are deletes enabled" probe


def start_prunes(url: str, tmp_path: Path, *extra: str) -> list[tuple[subprocess.Popen[str], Path]]:
    runs = []
    for number in range(10):
        report = tmp_path / f"run-{number}.json"
        command = [sys.executable, "-m", "pipeline_step", "prune", "--registry", url, "--repo", "bench/*"]
        runs.append(
            (
                subprocess.Popen(
                    [*command, "--match", "alpha", "--keep", "20", "--no-progress", "--json", str(report), *extra],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                    cwd=ROOT,
                    env=cli_env(),
                ),
                report,
            )
        )
    return runs


@pytest.mark.parametrize("wait", [True, False], ids=["waiting", "no-wait"])
def test_ten_prunes_at_once_are_serialized_and_delete_each_digest_once(
    wait: bool, registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    seed(tmp_path / "storage", SeedSpec(repositories=3, tags=60))
    registry = registry_factory("load", storage=tmp_path / "storage")
    plan = run_cli("plan", "--registry", registry.url, "--repo", "bench/*", "--match", "alpha", "--keep", "20",
                   "--json", str(tmp_path / "plan.json"))  # fmt: skip
    assert plan.code == 0, plan.output
    planned = {(e["repository"], e["tag"]) for e in json.loads((tmp_path / "plan.json").read_text())["deleted"]}
    with RecordingProxy(registry.url) as proxy:
        runs = start_prunes(proxy.url, tmp_path, *(() if wait else ("--no-wait",)))
        codes = [process.wait(timeout=300) for process, _ in runs]
        deletes = Counter(r.path for r in proxy.requests if r.method == "DELETE" and PROBE not in r.path)
    assert set(codes) <= ({0} if wait else {0, 6}), [process.stderr.read() for process, _ in runs]  # type: ignore[union-attr]
    assert codes.count(0) >= 1
    deleted: set[tuple[str, str]] = set()
    for code, (_, report) in zip(codes, runs, strict=True):
        document = json.loads(report.read_text())
        assert document["exit_code"] == code
        deleted |= {(e["repository"], e["tag"]) for e in document["deleted"] if e["tag"]}
    assert deleted == planned
    assert deletes and max(deletes.values()) == 1, [d for d, n in deletes.items() if n > 1]


def race(url: str, marker: Path, moved: list[tuple[str, str]], added: list[tuple[str, str]]) -> dict[str, str]:
    """From the moment planning is done: re-push ``moved`` tags with new images, push ``added`` ones.
    Returns each pushed reference and the digest it now has."""
    deadline = time.monotonic() + 120
    while not marker.exists():
        if time.monotonic() > deadline:
            raise AssertionError("planning never finished")
        time.sleep(0.005)  # polling for the marker
    client = PushClient(url)
    pushed: dict[str, str] = {}
    try:
        for repository, tag in [*moved, *added]:
            documents = image_documents(tag, label=f"pushed-during-the-prune-{repository}-{tag}")
            outcome = client.push(repository, tag, documents)
            assert outcome.ok, outcome.detail
            pushed[f"{repository}:{tag}"] = sha256(documents.manifest)
    finally:
        client.close()
    return pushed


def prune_racing_a_pusher(registry: RegistryServer, tmp_path: Path, target: list[str], spec: SeedSpec) -> None:
    policy = ["--repo", "bench/*", "--match", "alpha", "--keep", str(spec.tags * 9 // 10)]
    plan = run_cli("plan", *target, *policy, "--json", str(tmp_path / "plan.json"))
    assert plan.code == 0, plan.output
    document = json.loads((tmp_path / "plan.json").read_text())
    last = max(entry["repository"] for entry in document["deleted"])
    # The tags of the last repository's last steps: the executor reaches them well after the pusher is done.
    doomed = sorted((e["digest"], e["tag"]) for e in document["deleted"] if e["repository"] == last and e["tag"])
    moved = [(last, tag) for _, tag in doomed[-10:]]
    added = [(name, f"9.9.9-alpha.{n}") for n, name in enumerate(spec.names()[:10])]
    marker = tmp_path / "planned"
    result: dict[str, dict[str, str]] = {}
    pusher = threading.Thread(target=lambda: result.setdefault("pushed", race(registry.url, marker, moved, added)))
    pusher.start()
    completed = subprocess.run(
        [sys.executable, "-m", "tests.support.planned", str(marker), "--", "prune", *target, *policy,
         "--no-progress", "--json", str(tmp_path / "prune.json")],
        capture_output=True, text=True, cwd=ROOT, env=cli_env(), timeout=600,
    )  # fmt: skip
    pusher.join(timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert "pushed" in result, "the pusher failed"
    # Nothing pushed after planning is lost, and the moved tags were caught by the re-check.
    for reference, digest in result["pushed"].items():
        repository, tag = reference.split(":", 1)
        assert resolve(registry.url, repository, tag) == digest, f"{reference} was lost"
    report = json.loads((tmp_path / "prune.json").read_text())
    skipped = {(e["repository"], e["tag"]) for e in report["skipped"]}
    assert set(moved) <= skipped, sorted(set(moved) - skipped)
    assert all(
        "re-pushed after planning" in e["reason"] for e in report["skipped"] if (e["repository"], e["tag"]) in moved
    )
    assert not set(moved) & {(e["repository"], e["tag"]) for e in report["deleted"]}
    for name in spec.names():
        assert len(list_tags(registry.url, name)) >= spec.tags * 9 // 10


def test_a_prune_through_the_api_never_deletes_what_was_pushed_after_planning(
    registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    spec = SeedSpec(repositories=20, tags=200, images=40)
    seed(tmp_path / "storage", spec)
    registry = registry_factory("race-api", storage=tmp_path / "storage")
    prune_racing_a_pusher(registry, tmp_path, ["--registry", registry.url], spec)


@pytest.fixture
def memory_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory in RAM (/dev/shm) where there is one: 100,000 tags seed three times faster there."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    directory = Path(tempfile.mkdtemp(prefix="registry-prune-load-", dir=shm))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_a_direct_prune_of_20_x_5000_tags_never_deletes_what_was_pushed_after_planning(
    registry_factory: RegistryFactory, memory_dir: Path, tmp_path: Path
) -> None:
    spec = SeedSpec(repositories=20, tags=5000, images=500)
    storage = memory_dir / "storage"
    seed(storage, spec)
    registry = registry_factory("race-direct", storage=storage)
    prune_racing_a_pusher(registry, tmp_path, ["--storage-root", str(storage)], spec)
