"""``usage``: shared layers counted once; the reclaim prediction against what garbage-collect frees."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from tests.support.cli import run_cli
from tests.support.images import Pusher, make_layer
from tests.support.registry import RegistryServer

POLICY = ("--match", "alpha", "--keep", "3")


@dataclass
class Shared:
    base: int  # size of the base layer both repositories use
    small: int  # size of the layer alpha.2 shares with an untagged image


def blob_bytes(storage: Path) -> int:
    blobs = storage / "docker" / "registry" / "v2" / "blobs"
    return sum(path.stat().st_size for path in blobs.rglob("data"))


def seed_two_repositories(url: str) -> Shared:
    """team/app and team/lib share a base layer; app's alpha.1 shares its top layer with lib's release;
    an untagged image in app shares alpha.2's small layer (invisible through the API)."""
    base = make_layer("base", 300_000)
    app_tops = {n: make_layer(f"app-{n}", 30_000) for n in range(1, 9)}
    small = make_layer("small", 1_000)
    with Pusher(url) as pusher:
        for n in range(1, 9):
            layers = [base, app_tops[n], small] if n == 2 else [base, app_tops[n]]
            pusher.image("team/app", f"1.0.0-alpha.{n}", layers=layers)
        pusher.image("team/app", "1.0.0", layers=[base, make_layer("app-release", 30_000)])
        pusher.tag("team/app", "1.0.0-alpha.8", "latest")
        pusher.image("team/app", None, layers=[base, small], label="untagged")
        for n in range(1, 7):
            pusher.image("team/lib", f"2.0.0-alpha.{n}", layers=[base, make_layer(f"lib-{n}", 30_000)])
        pusher.image("team/lib", "2.0.0", layers=[base, app_tops[1]])
    return Shared(len(base[0]), len(small[0]))


def usage(*args: str, path: Path) -> dict[str, object]:
    result = run_cli("usage", *args, *POLICY, "--json", str(path), "--no-progress")
    assert result.code == 0, result.output
    document: dict[str, object] = json.loads(path.read_text())
    return document


def test_usage_counts_shared_layers_once_and_predicts_what_gc_frees(registry: RegistryServer, tmp_path: Path) -> None:
    shared = seed_two_repositories(registry.url)
    on_disk = blob_bytes(registry.storage)

    direct = usage("--storage-root", str(registry.storage), path=tmp_path / "direct.json")
    api = usage("--registry", registry.url, path=tmp_path / "api.json")
    rows = {row["repository"]: row for row in direct["repositories"]}  # type: ignore[attr-defined]
    api_rows = {row["repository"]: row for row in api["repositories"]}  # type: ignore[attr-defined]

    # Every blob on disk is referenced once in direct mode's total, the shared base layer included;
    # the rows each count it, so their sum is larger.
    assert direct["referenced_bytes"] == on_disk
    assert rows["team/app"]["referenced_bytes"] + rows["team/lib"]["referenced_bytes"] > on_disk + shared.base
    assert (rows["team/app"]["tags"], rows["team/app"]["manifests"]) == (10, 10)  # 9 manifests + the untagged one
    assert (rows["team/lib"]["tags"], rows["team/lib"]["manifests"]) == (7, 7)
    assert (api_rows["team/app"]["tags"], api_rows["team/app"]["manifests"]) == (10, 9)
    assert rows["team/app"]["tags_to_delete"] == 5 and rows["team/lib"]["tags_to_delete"] == 3
    assert direct["exact"] is True and api["exact"] is False

    pruned = run_cli("prune", "--registry", registry.url, "--repo", "team/*", *POLICY)
    assert pruned.code == 0, pruned.output
    registry.stop()
    registry.garbage_collect()
    freed = on_disk - blob_bytes(registry.storage)

    # Direct mode sees the untagged image, so it is exact; the API cannot see it and counts
    # alpha.2's small layer as freed: slightly high, and well within 5%.
    assert direct["reclaimable_bytes"] == freed
    assert freed <= api["reclaimable_bytes"] <= freed * 1.05  # type: ignore[operator]
    assert api["reclaimable_bytes"] == freed + shared.small
    # No freed blob is shared by both repositories' deletions, so the rows add up to the total.
    assert rows["team/app"]["reclaimable_bytes"] + rows["team/lib"]["reclaimable_bytes"] == freed


def test_usage_shows_the_bytes_already_waiting_for_gc(registry: RegistryServer, tmp_path: Path) -> None:
    """After a prune and before GC the pruned blobs are still on disk: usage says so, exactly from the
    blob store, and through the API at least what the undo logs recorded. After GC the exact figure is
    zero; the API's keeps the one layer an untagged image it cannot see still holds."""
    shared = seed_two_repositories(registry.url)
    on_disk = blob_bytes(registry.storage)
    undo = tmp_path / "undo"
    before = usage("--storage-root", str(registry.storage), path=tmp_path / "before.json")
    waiting_before = before["waiting_for_gc"]
    assert isinstance(waiting_before, dict) and (waiting_before["bytes"], waiting_before["exact"]) == (0, True)

    pruned = run_cli("prune", "--registry", registry.url, "--repo", "team/*", *POLICY, "--audit-dir", str(undo))
    assert pruned.code == 0, pruned.output
    direct = usage("--storage-root", str(registry.storage), path=tmp_path / "direct.json")
    api = usage("--registry", registry.url, "--audit-dir", str(undo), path=tmp_path / "api.json")
    text = run_cli("usage", "--registry", registry.url, "--audit-dir", str(undo), *POLICY, "--no-progress")
    registry.stop()
    registry.garbage_collect()
    freed = on_disk - blob_bytes(registry.storage)

    waiting, api_waiting = direct["waiting_for_gc"], api["waiting_for_gc"]
    assert isinstance(waiting, dict) and isinstance(api_waiting, dict)
    assert waiting["exact"] is True and waiting["bytes"] == freed > 0  # exactly what GC then freed
    # The API sees the pruned layers and configs (not the manifests' own bytes, nor the untagged
    # image that still holds alpha.2's small layer): a lower bound, short by little.
    assert api_waiting["exact"] is False and str(undo) in api_waiting["source"]
    assert freed * 0.9 <= api_waiting["bytes"] <= freed + shared.small
    assert "already waiting for garbage collection" in str(api["message"])
    assert "Already waiting for garbage collection: at least " in text.stdout and str(undo) in text.stdout

    registry.start(same_port=True)
    after = usage("--registry", registry.url, "--audit-dir", str(undo), path=tmp_path / "after.json")
    # Only alpha.2's small layer stays: the untagged image the API cannot see still references it.
    assert after["waiting_for_gc"]["bytes"] == shared.small  # type: ignore[index]
    exact_after = usage("--storage-root", str(registry.storage), path=tmp_path / "exact-after.json")
    assert exact_after["waiting_for_gc"]["bytes"] == 0  # type: ignore[index]


def test_usage_table_sorts_by_reclaimable_and_limits_rows(registry: RegistryServer, tmp_path: Path) -> None:
    seed_two_repositories(registry.url)
    result = run_cli("usage", "--registry", registry.url, *POLICY, "--top", "1", "--no-progress")
    assert result.code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAGS", "MANIFESTS", "REFERENCED", "RECLAIMABLE", "DELETE"]
    assert lines[1].startswith("team/app ")  # five deletions reclaim more than team/lib's three
    assert lines[3].startswith("TOTAL (2 repositories)")
    assert "(1 more repository not shown" in result.stdout
    only_lib = run_cli("usage", "--registry", registry.url, "--repo", "team/lib", *POLICY, "--json", "-")
    document = json.loads(only_lib.stdout)
    rows = {row["repository"]: row for row in document["repositories"]}
    assert rows["team/app"]["selected"] is False and rows["team/app"]["tags_to_delete"] == 0
    assert rows["team/lib"]["tags_to_delete"] == 3
    assert document["reclaimable_bytes"] == rows["team/lib"]["reclaimable_bytes"]
    bad = run_cli("usage", "--registry", registry.url, "--top", "0")
    assert bad.code == 2 and "--top" in bad.stderr


def test_plan_reports_the_catalog_wide_prediction_on_request(registry: RegistryServer, tmp_path: Path) -> None:
    seed_two_repositories(registry.url)
    selected = run_cli("plan", "--registry", registry.url, "--repo", "team/app", *POLICY, "--json", str(tmp_path / "s"))
    catalog = run_cli(
        "plan", "--registry", registry.url, "--repo", "team/app", *POLICY, "--predict", "catalog",
        "--json", str(tmp_path / "c"),
    )  # fmt: skip
    document = usage("--registry", registry.url, "--repo", "team/app", path=tmp_path / "u.json")
    assert selected.code == catalog.code == 0
    predicted_selected = json.loads((tmp_path / "s").read_text())["predicted_reclaim_bytes"]
    predicted_catalog = json.loads((tmp_path / "c").read_text())["predicted_reclaim_bytes"]
    assert predicted_catalog == document["reclaimable_bytes"]
    assert predicted_selected > predicted_catalog  # alpha.1's top layer is shared with team/lib
    assert "an upper bound" in selected.stdout
    assert "checked against all 2 repositories of the catalog" in catalog.stdout
    assert os.path.exists(tmp_path / "u.json")
