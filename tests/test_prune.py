"""plan and prune against a real registry: the acceptance repository, dry runs, delete-disabled."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.support.apps import SeededApp
from tests.support.cli import policy_args, run_cli
from tests.support.images import list_tags, resolve
from tests.support.proxy import RecordingProxy
from tests.support.registry import RegistryServer

EXPECTED_LEFT = sorted(
    [f"3.3.0-alpha.{n}" for n in range(31, 41)] + ["3.3.0-alpha.5", "latest", "3.1.0", "3.2.0", "multi"]
)


def test_plan_lists_exactly_the_29_deletions_and_changes_nothing(
    registry: RegistryServer, seeded: SeededApp, tmp_path: Path
) -> None:
    before = list_tags(registry.url, seeded.repo)
    report_path = tmp_path / "plan.json"
    result = run_cli(
        "plan",
        *policy_args(registry.url),
        "--json",
        str(report_path),
    )
    assert result.code == 0, result.output
    report = json.loads(report_path.read_text())
    deleted = sorted(entry["tag"] for entry in report["deleted"])
    expected = sorted(f"3.3.0-alpha.{n}" for n in range(1, 31) if n != 5)
    assert deleted == expected
    assert len(deleted) == 29
    for entry in report["deleted"]:
        assert entry["digest"] == seeded.alphas[int(entry["tag"].rsplit(".", 1)[1])].digest
        assert entry["reason"]
    kept = {entry["tag"]: entry["reason"] for entry in report["kept"]}
    assert kept["3.3.0-alpha.5"] == "shares digest with latest"
    assert "protected" in kept["latest"] and "protected" in kept["3.1.0"]
    assert kept["multi"].startswith("does not match")
    assert list_tags(registry.url, seeded.repo) == before
    assert "29 tags to delete" in result.stdout
    assert "Nothing was changed" in result.stdout


def test_prune_leaves_exactly_the_kept_tags_and_list_children(
    registry: RegistryServer, seeded: SeededApp, tmp_path: Path
) -> None:
    report_path = tmp_path / "prune.json"
    result = run_cli(
        "prune",
        *policy_args(registry.url),
        "--json",
        str(report_path),
    )
    assert result.code == 0, result.output
    assert list_tags(registry.url, seeded.repo) == EXPECTED_LEFT
    assert resolve(registry.url, seeded.repo, "latest") == seeded.alphas[5].digest
    for child in seeded.children:
        assert resolve(registry.url, seeded.repo, child.digest) == child.digest
    assert resolve(registry.url, seeded.repo, "multi") == seeded.multi.digest
    for n in range(1, 31):
        if n != 5:
            assert resolve(registry.url, seeded.repo, seeded.alphas[n].digest) is None
    report = json.loads(report_path.read_text())
    assert report["executed"] is True and report["outcome"] == "ok"
    assert report["summary"]["deleted"] == 29
    assert report["summary"]["manifests_deleted"] == 29
    # A second run finds nothing more to delete.
    again = run_cli("prune", "--registry", registry.url, "--repo", "team/app", "--match", "alpha", "--keep", "10")
    assert again.code == 0
    assert "deleted 0 tags" in again.stdout


def test_dry_run_plans_the_same_and_deletes_nothing(
    registry: RegistryServer, seeded: SeededApp, tmp_path: Path
) -> None:
    before = list_tags(registry.url, seeded.repo)
    plan = run_cli(
        "plan",
        *policy_args(registry.url),
        "--json",
        str(tmp_path / "plan.json"),
    )
    dry = run_cli(
        "prune",
        "--dry-run",
        *policy_args(registry.url),
        "--json",
        str(tmp_path / "dry.json"),
    )
    assert plan.code == dry.code == 0
    planned = json.loads((tmp_path / "plan.json").read_text())
    dried = json.loads((tmp_path / "dry.json").read_text())
    assert planned["deleted"] == dried["deleted"]
    assert planned["kept"] == dried["kept"]
    assert dried["dry_run"] is True and dried["executed"] is False
    assert list_tags(registry.url, seeded.repo) == before


def test_delete_disabled_stops_before_any_delete_and_names_the_fix(
    registry: RegistryServer, seeded: SeededApp, tmp_path: Path
) -> None:
    registry.restart(delete_enabled=False)
    before = list_tags(registry.url, seeded.repo)
    result = run_cli(
        "prune",
        *policy_args(registry.url),
        "--json",
        str(tmp_path / "r.json"),
    )
    assert result.code == 3, result.output
    assert "storage.delete.enabled" in result.stderr
    assert "REGISTRY_STORAGE_DELETE_ENABLED=true" in result.stderr
    assert "restart" in result.stderr
    assert "Traceback" not in result.output
    assert list_tags(registry.url, seeded.repo) == before
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["deleted"] == []
    assert len(report["not_attempted"]) == 29
    assert report["exit_code"] == 3


def test_delete_disabled_sends_exactly_one_delete(registry: RegistryServer, seeded: SeededApp) -> None:
    """The run stops at the first refused DELETE instead of hammering the registry."""
    registry.restart(delete_enabled=False)
    with RecordingProxy(registry.url) as proxy:
        result = run_cli("prune", "--registry", proxy.url, "--repo", "team/app", "--match", "alpha", "--keep", "10")
    assert result.code == 3
    deletes = [r for r in proxy.requests if r.method == "DELETE"]
    # The digest probe; on 3.x also a tag probe (3.0.0 deletes tags even then: a misconfiguration to name).
    assert len(deletes) == (1 if registry.line == "2.8" else 2)
    assert all("sha256:" + "0" * 64 in r.path or "registry-prune-probe-" in r.path for r in deletes)


def test_read_only_mode_exits_3_with_every_tag_still_there(registry: RegistryServer, seeded: SeededApp) -> None:
    registry.restart(readonly=True)
    before = list_tags(registry.url, seeded.repo)
    result = run_cli("prune", "--registry", registry.url, "--repo", "team/app", "--match", "alpha", "--keep", "10")
    assert result.code == 3, result.output
    assert "read-only" in result.output or "refuses" in result.output
    assert list_tags(registry.url, seeded.repo) == before


def test_registry_unchanged_after_plan_on_real_http(registry: RegistryServer, seeded: SeededApp) -> None:
    # The list and its children resolve by digest before and after planning.
    for child in seeded.children:
        response = httpx.head(
            f"{registry.url}/v2/team/app/manifests/{child.digest}",
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        )
        assert response.status_code == 200
