"""Garbage collection never silently corrupts someone else's push.

distribution's GC must not run while the registry accepts pushes. The hazard
is shown to be real, deterministically: a second client uploads a layer, the
tool's GC runs, and the client PUTs its manifest between GC and the restart
(from a wrapper around the GC command). With ``--allow-live-gc`` that image
"pushed" and cannot be pulled; with the default guard (read-only) the push is
refused loudly, and its retry after the restart gives a complete image. Then
a background pusher runs during a whole ``recover``: every image it pushed is
complete or was refused, none is silently broken.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.images import ImageDocuments, image_documents, make_layer
from tests.support.pushclient import PushClient, PushOutcome
from tests.support.scenario import DiskFullRegistry
from tests.support.storage_seed import StorageWriter

pytestmark = pytest.mark.registry  # starts docker-registry itself, not through registry_factory

REPO = "team/app"
LATE = "late"  # the second client's image


@pytest.fixture
def managed(tmp_path: Path) -> Iterator[DiskFullRegistry]:
    with DiskFullRegistry(tmp_path / "registry", size_mib=48) as registry:
        yield registry


def late_push_gc(registry: DiskFullRegistry, manifest: Path, result: Path) -> str:
    """The registry's own GC, then the second client's manifest PUT: "between GC and the restart"."""
    client = [sys.executable, "-m", "tests.support.pushclient"]
    put = shlex.join([*client, "put-manifest", registry.url, REPO, LATE, str(manifest), str(result)])
    return f"{registry.gc_command()} && {put}"


def started_push(client: PushClient, tmp_path: Path) -> tuple[ImageDocuments, Path]:
    """The second client uploads its blobs (no manifest yet): GC will see them as unreferenced."""
    documents = image_documents(LATE, layers=[make_layer("late-layer", 64 * 1024)], oci=True)
    for blob in (documents.config, *documents.layers):
        client.upload(REPO, blob)
    manifest = tmp_path / "late-manifest.json"
    manifest.write_bytes(documents.manifest)
    return documents, manifest


def intact(client: PushClient, repo: str, documents: ImageDocuments) -> bool:
    return all(client.blob_intact(repo, blob) for blob in (documents.config, *documents.layers))


def test_live_gc_breaks_a_concurrent_push_and_the_read_only_guard_prevents_it(
    managed: DiskFullRegistry, tmp_path: Path
) -> None:
    client = PushClient(managed.url)
    try:
        # The hazard, shown: --allow-live-gc.
        documents, manifest = started_push(client, tmp_path)
        result = tmp_path / "late-status"
        live = run_cli(
            "gc", "--gc-cmd", late_push_gc(managed, manifest, result), "--allow-live-gc",
            "--registry", managed.url, "--json", str(tmp_path / "live.json"),
        )  # fmt: skip
        assert live.code == 0, live.output
        assert result.read_text() == "201", "the late manifest PUT was accepted: the push 'succeeded'"
        assert not intact(client, REPO, documents), "yet its blobs are gone"

        # The cure: the default guard. Read-only for GC, then a restart.
        subprocess.run(managed.ctl("restart"), shell=True, check=True, capture_output=True)  # a fresh cache
        documents, manifest = started_push(client, tmp_path)
        result.unlink()
        guarded = run_cli(
            "gc", "--gc-cmd", late_push_gc(managed, manifest, result),
            "--readonly-cmd", managed.ctl("restart", readonly=True), "--restart-cmd", managed.ctl("restart"),
            "--registry", managed.url, "--json", str(tmp_path / "guarded.json"),
        )  # fmt: skip
        assert guarded.code == 0, guarded.output
        assert result.read_text() != "201", "the read-only registry must refuse the late push"
        # The client sees the refusal and retries its whole push after the restart: the image is complete.
        retried = client.push(REPO, LATE, documents)
        assert retried.ok, retried.detail
        assert intact(client, REPO, documents)
    finally:
        client.close()


def test_pushes_during_a_recover_are_complete_or_refused_never_broken(
    managed: DiskFullRegistry, tmp_path: Path
) -> None:
    writer = StorageWriter(managed.storage)
    for n in range(1, 41):
        writer.image(REPO, f"3.3.0-alpha.{n}", layers=[make_layer(f"alpha-{n}", 32 * 1024)])
    # The seeded tree was written behind the registry's back: restart it so no cache predates it.
    subprocess.run(managed.ctl("restart"), shell=True, check=True, capture_output=True)
    outcomes: list[tuple[PushOutcome, ImageDocuments]] = []
    done = threading.Event()

    def pusher() -> None:
        client = PushClient(managed.url, timeout=5)
        number = 0
        try:
            while not done.is_set():
                number += 1
                documents = image_documents(
                    f"other.{number}", layers=[make_layer(f"other-{number}", 16 * 1024)], oci=True
                )
                outcomes.append((client.push("team/other", f"other.{number}", documents), documents))
        finally:
            client.close()

    thread = threading.Thread(target=pusher, daemon=True)
    thread.start()
    try:
        result = run_cli(
            "recover", "--force", "--registry", managed.url, "--repo", REPO, "--match", "alpha", "--keep", "3",
            "--gc-cmd", managed.gc_command(),
            "--readonly-cmd", managed.ctl("restart", readonly=True), "--restart-cmd", managed.ctl("restart"),
            "--json", str(tmp_path / "recover.json"),
        )  # fmt: skip
    finally:
        done.set()
        thread.join(timeout=30)
    assert result.code == 0, result.output
    pushed = [(outcome, documents) for outcome, documents in outcomes if outcome.ok]
    refused = [outcome for outcome, _ in outcomes if not outcome.ok]
    assert pushed, "the pusher got nothing through: the test proves nothing"
    assert refused, "nothing was refused: the pusher never met the read-only window"
    checker = PushClient(managed.url)
    try:
        broken = [outcome.tag for outcome, documents in pushed if not intact(checker, "team/other", documents)]
    finally:
        checker.close()
    assert broken == [], f"pushed, yet broken: {broken} (of {len(pushed)} pushed, {len(refused)} refused)"
