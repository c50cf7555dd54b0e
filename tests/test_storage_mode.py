"""Direct-storage mode: the same end state as an API prune, proven on copies of one seeded storage."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline_step.backends.filesystem.deleter import StorageDeleter
from pipeline_step.backends.filesystem.layout import StorageLayout, StorageLayoutError
from pipeline_step.planning.planner import DeleteStep, Phase
from pipeline_step.registry.model import DeleteResult
from tests.support.cli import run_cli
from tests.support.images import Pushed, list_tags, resolve
from tests.support.registry import RegistryFactory
from tests.support.storage_seed import StorageWriter, tree

POLICY = ("--repo", "team/*", "--match", "alpha", "--keep", "10")


@dataclass
class Seeded:
    alphas: dict[int, Pushed]
    alpha3_children: list[Pushed]
    multi: Pushed
    multi_children: list[Pushed]
    untagged: Pushed
    lib: dict[int, Pushed]


def seed(root: Path) -> Seeded:
    """team/app: 40 alphas (alpha.3 a two-arch index), releases, latest, a kept index and an
    untagged image; team/lib: 14 alphas sharing team/app's base layer."""
    writer = StorageWriter(root)
    alphas: dict[int, Pushed] = {}
    children3: list[Pushed] = []
    for n in range(1, 41):
        if n == 3:
            children3 = [
                writer.image("team/app", None, label=f"a3-{arch}", architecture=arch) for arch in ("amd64", "arm64")
            ]
            alphas[n] = writer.index("team/app", "3.3.0-alpha.3", children3)
        else:
            alphas[n] = writer.image("team/app", f"3.3.0-alpha.{n}", created=f"2024-02-{n % 28 + 1:02d}T00:00:00Z")
    for version in ("3.1.0", "3.2.0"):
        writer.image("team/app", version)
    writer.tag("team/app", "latest", alphas[5].digest)
    kids = [writer.image("team/app", None, label=f"multi-{arch}", architecture=arch) for arch in ("amd64", "arm64")]
    multi = writer.index("team/app", "multi", kids)
    untagged = writer.image("team/app", None, label="pushed-by-digest")
    lib = {n: writer.image("team/lib", f"1.0.0-alpha.{n}") for n in range(1, 15)}
    writer.uploads_dir("team/app")
    writer.uploads_dir("team/lib")
    return Seeded(alphas, children3, multi, kids, untagged, lib)


@pytest.fixture
def seeded_storage(tmp_path: Path) -> tuple[Path, Seeded]:
    return tmp_path / "seed", seed(tmp_path / "seed")


def test_direct_prune_leaves_the_same_tree_as_an_api_prune(
    registry_factory: RegistryFactory, seeded_storage: tuple[Path, Seeded], tmp_path: Path
) -> None:
    source, seeded = seeded_storage
    api_root, direct_root = tmp_path / "api", tmp_path / "direct"
    shutil.copytree(source, api_root)
    shutil.copytree(source, direct_root)

    served = registry_factory("api-registry", storage=api_root)
    via_api = run_cli("prune", "--registry", served.url, *POLICY, "--json", str(tmp_path / "api.json"))
    assert via_api.code == 0, via_api.output
    served.stop()
    direct = run_cli("prune", "--storage-root", str(direct_root), *POLICY, "--json", str(tmp_path / "direct.json"))
    assert direct.code == 0, direct.output
    assert "restart the registry" in direct.stdout
    assert "checked against all 2 repositories of the catalog" in direct.stdout

    api_report = json.loads((tmp_path / "api.json").read_text())
    direct_report = json.loads((tmp_path / "direct.json").read_text())
    assert direct_report["deleted"] == api_report["deleted"]
    assert direct_report["summary"] == api_report["summary"]
    assert direct_report["summary"]["manifests_deleted"] == 29 + 2 + 4  # alpha.3's two children go with it
    assert direct_report["requests"] == 0
    assert direct_report["registry"] == f"file://{direct_root.resolve()}"

    # Identical storage trees, apart from upload leftovers; no blob was touched by either.
    assert tree(direct_root) == tree(api_root)
    assert {p for p in tree(source) if "/blobs/" in p} == {p for p in tree(direct_root) if "/blobs/" in p}

    # The registry served from the direct result answers exactly as expected.
    result = registry_factory("result-registry", storage=direct_root)
    kept_alphas = [f"3.3.0-alpha.{n}" for n in range(31, 41)] + ["3.3.0-alpha.5"]
    assert list_tags(result.url, "team/app") == sorted([*kept_alphas, "3.1.0", "3.2.0", "latest", "multi"])
    assert list_tags(result.url, "team/lib") == sorted(f"1.0.0-alpha.{n}" for n in range(5, 15))
    assert resolve(result.url, "team/app", "latest") == seeded.alphas[5].digest
    for n in (1, 2, 3, 4, 6, 30):
        assert resolve(result.url, "team/app", seeded.alphas[n].digest) is None
    for gone in seeded.alpha3_children:
        assert resolve(result.url, "team/app", gone.digest) is None
    for kept in [*seeded.multi_children, seeded.multi, seeded.untagged, seeded.alphas[31]]:
        assert resolve(result.url, "team/app", kept.digest) == kept.digest
    assert resolve(result.url, "team/lib", seeded.lib[1].digest) is None
    assert resolve(result.url, "team/lib", seeded.lib[14].digest) == seeded.lib[14].digest


def test_direct_plan_matches_the_api_plan_and_reads_nothing_through_http(
    registry_factory: RegistryFactory, seeded_storage: tuple[Path, Seeded], tmp_path: Path
) -> None:
    source, _ = seeded_storage
    served = registry_factory("api-registry", storage=source)
    via_api = run_cli("plan", "--registry", served.url, *POLICY, "--json", str(tmp_path / "api.json"))
    served.stop()
    direct = run_cli("plan", "--storage-root", str(source), *POLICY, "--order", "created", "--keep", "10")
    by_version = run_cli("plan", "--storage-root", str(source), *POLICY, "--json", str(tmp_path / "direct.json"))
    assert via_api.code == direct.code == by_version.code == 0, direct.output
    planned = json.loads((tmp_path / "api.json").read_text())
    direct_plan = json.loads((tmp_path / "direct.json").read_text())
    assert direct_plan["deleted"] == planned["deleted"]
    assert direct_plan["kept"] == planned["kept"]
    assert "Nothing was changed" in direct.stdout
    assert "restart the registry" not in by_version.stdout


def test_a_directory_that_is_not_a_v2_storage_is_refused(tmp_path: Path) -> None:
    (tmp_path / "docker" / "registry" / "v2" / "repositories").mkdir(parents=True)
    result = run_cli("prune", "--storage-root", str(tmp_path), *POLICY)
    assert result.code == 2, result.output
    assert "does not look like a distribution v2 filesystem storage" in result.stderr
    assert "docker/registry/v2/blobs/" in result.stderr
    assert "rootdirectory" in result.stderr
    missing = run_cli("plan", "--storage-root", str(tmp_path / "nope"), *POLICY)
    assert missing.code == 2 and "does not exist" in missing.stderr
    with pytest.raises(StorageLayoutError):
        StorageLayout.open(tmp_path / "docker")


def test_the_v2_directory_itself_is_accepted(seeded_storage: tuple[Path, Seeded]) -> None:
    source, _ = seeded_storage
    layout = StorageLayout.open(source / "docker" / "registry" / "v2")
    assert layout.root == source.resolve()
    assert layout.repositories() == ["team/app", "team/lib"]


def test_each_tag_is_re_read_just_before_its_directory_is_removed(seeded_storage: tuple[Path, Seeded]) -> None:
    source, seeded = seeded_storage
    layout = StorageLayout.open(source)
    deleter = StorageDeleter(layout)
    digest = seeded.alphas[7].digest
    step = DeleteStep("team/app", digest, ("3.3.0-alpha.7",), "", Phase.IMAGE, "test")
    # Re-pushed after the executor's own check: the tag now names another manifest.
    moved = Path(layout.tag_dir("team/app", "3.3.0-alpha.7")) / "current" / "link"
    moved.write_text(seeded.alphas[8].digest)
    assert deleter.delete(step) is DeleteResult.DELETED
    assert moved.read_text() == seeded.alphas[8].digest  # the moved tag survives
    assert not Path(layout.revision_link("team/app", digest)).exists()
    assert Path(layout.revision_link("team/app", digest)).parent.is_dir()  # like the registry: the link file only
    assert deleter.delete(step) is DeleteResult.ALREADY_GONE
    assert deleter.resolve_tag("team/app", "3.3.0-alpha.8") == seeded.alphas[8].digest
    assert deleter.resolve_tag("team/app", "no-such-tag") is None


def test_a_running_registry_stops_serving_what_a_direct_prune_removed(
    registry_factory: RegistryFactory, seeded_storage: tuple[Path, Seeded], tmp_path: Path
) -> None:
    source, seeded = seeded_storage
    served = registry_factory("live-registry", storage=source)
    doomed = seeded.alphas[1].digest
    assert resolve(served.url, "team/app", doomed) == doomed  # looked up once: anything cacheable is cached
    result = run_cli(
        "prune", "--storage-root", str(source), "--registry", served.url, *POLICY, "--json", str(tmp_path / "r.json")
    )
    assert result.code == 0, result.output
    assert "restart the registry" in result.stdout
    if served.line == "2.8":
        # distribution 2.8 reads the links on every request: removed tags and manifests are gone at once.
        assert resolve(served.url, "team/app", doomed) is None
    else:
        # 3.x caches a manifest it served by digest: it goes on serving it until the restart the note asks for.
        assert resolve(served.url, "team/app", doomed) == doomed
        served.restart(same_port=True)
        assert resolve(served.url, "team/app", doomed) is None
    assert resolve(served.url, "team/app", "3.3.0-alpha.1") is None
    assert "3.3.0-alpha.1" not in list_tags(served.url, "team/app")
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["registry"] == served.url  # the lock and the audit log are keyed like an API run's
    audit = list((tmp_path / "audit").glob("*.jsonl"))
    assert len(audit) == 1 and served.url in audit[0].read_text()
