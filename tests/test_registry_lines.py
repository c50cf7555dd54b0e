"""Registry 3.x beside 2.8: the line is learnt from the registry's answers, tag lists are paged, a tag
the list hides is never lost, schema1 manifests are listed (not fatal), and 3.0.0's tag deletes with
deletion disabled are called a misconfiguration.

Every test here runs on real registries; those about one line's behaviour name it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pipeline_step.planning.planner import SCHEMA1_REASON
from tests.support.cli import run_cli
from tests.support.proxy import Fault, RecordingProxy, Rule, Rules
from tests.support.registry import RegistryFactory
from tests.support.registry_state import RegistryState
from tests.support.s3 import S3Server
from tests.support.storage_seed import StorageWriter, tree

REPO = "team/app"


def line_name(line: str) -> str:
    return "2.8" if line == "2.8" else "3.x"


def schema1_manifest(writer: StorageWriter, tag: str) -> bytes:
    """A signed schema1 manifest as docker 1.x pushed them (2.8 serves it; 3.x cannot read it)."""
    layer = writer.blob(f"schema1 layer of {tag}".encode())
    history = json.dumps({"id": "a" * 64, "created": "2015-06-01T00:00:00Z"})
    document = {
        "schemaVersion": 1,
        "name": REPO,
        "tag": tag,
        "architecture": "amd64",
        "fsLayers": [{"blobSum": layer}],
        "history": [{"v1Compatibility": history}],
        "signatures": [{"header": {"alg": "ES256"}, "signature": "c2ln", "protected": "e30"}],
    }
    return json.dumps(document, indent=3).encode()


def hide_prefixed(body: bytes) -> bytes:
    """distribution #4891 (3.1 on S3): a tag whose name starts with another tag's name is left out."""
    document = json.loads(body)
    tags = document.get("tags") or []
    document["tags"] = [tag for tag in tags if not any(other != tag and tag.startswith(other) for other in tags)]
    return json.dumps(document).encode()


HIDING = Rules(Rule(Fault("rewrite", rewrite=hide_prefixed), method="GET", path=r"/tags/list"))
RC_POLICY = ("--repo", REPO, "--match", r"^rc-[0-9]+$", "--keep", "1", "--order", "created")


def seed_rc(storage: Path) -> dict[str, str]:
    """rc-1..3 (rc-3 newest) and rc-1approved on rc-1's digest: the tag #4891 hides (it sorts after "rc-1/")."""
    writer = StorageWriter(storage)
    digests = {
        f"rc-{n}": writer.image(REPO, f"rc-{n}", created=f"2024-03-0{n}T00:00:00Z", label=f"rc{n}").digest
        for n in (1, 2, 3)
    }
    writer.tag(REPO, "rc-1approved", digests["rc-1"])
    digests["rc-1approved"] = digests["rc-1"]
    return digests


def test_the_line_is_learnt_from_answers_and_named(
    registry_factory: RegistryFactory, registry_line: str, tmp_path: Path
) -> None:
    storage = tmp_path / "storage"
    StorageWriter(storage).image(REPO, "1.0")
    server = registry_factory(storage=storage)
    report = tmp_path / "plan.json"
    result = run_cli("plan", "--registry", server.url, "--repo", REPO, "--match", "x", "--json", str(report))
    assert result.code == 0, result.output
    expected = line_name(registry_line)
    assert json.loads(report.read_text())["registry_line"] == expected
    assert f"registry: {server.url} (distribution {expected})" in result.stdout


def test_2500_tags_are_planned_in_full_following_the_pages(
    registry_factory: RegistryFactory, registry_line: str, tmp_path: Path
) -> None:
    storage = tmp_path / "storage"
    writer = StorageWriter(storage)
    layer = (b"shared base layer", "application/vnd.oci.image.layer.v1.tar")
    for n in range(2500):
        writer.image(REPO, f"1.0.0-build.{n}", layers=[layer], label=f"b{n}")
    server = registry_factory(storage=storage)
    report = tmp_path / "plan.json"
    with RecordingProxy(server.url) as proxy:
        result = run_cli(
            "plan", "--registry", proxy.url, "--repo", REPO, "--match", "build", "--keep", "100",
            "--json", str(report), timeout=600,
        )  # fmt: skip
    assert result.code == 0, result.output
    document = json.loads(report.read_text())
    assert document["summary"]["deleted"] == 2400 and document["summary"]["kept"] == 100
    kept = {entry["tag"] for entry in document["kept"]}
    assert kept == {f"1.0.0-build.{n}" for n in range(2400, 2500)}
    pages = [
        r.path
        for r in proxy.requests
        if r.method == "GET" and "/tags/list" in r.path and "n=registry-prune" not in r.path and r.status == 200
    ]  # the line probe's n=registry-prune left out
    if registry_line == "2.8":
        assert len(pages) == 1  # 2.8 ignores n and answers every tag at once
    else:
        assert len(pages) == 3 and all("n=1000" in page for page in pages)
        assert sum("last=" in page for page in pages) == 2  # the Link header was followed


@pytest.mark.parametrize("registry_line", ["3.1"], indirect=True)
def test_a_tag_the_list_hides_survives_on_3x(registry_factory: RegistryFactory, tmp_path: Path) -> None:
    storage = tmp_path / "storage"
    digests = seed_rc(storage)
    server = registry_factory(storage=storage)
    report = tmp_path / "prune.json"
    with RecordingProxy(server.url, schedule=HIDING) as proxy:
        result = run_cli("prune", "--registry", proxy.url, *RC_POLICY, "--no-progress", "--json", str(report))
    assert result.code == 0, result.output
    tag_deletes = [r.path for r in proxy.requests if r.method == "DELETE" and "/manifests/rc-" in r.path]
    assert sorted(tag_deletes) == [f"/v2/{REPO}/manifests/rc-1", f"/v2/{REPO}/manifests/rc-2"]
    with RegistryState(server.url) as registry:
        assert registry.snapshot(REPO) == {"rc-1approved": digests["rc-1"], "rc-3": digests["rc-3"]}
        assert registry.present(REPO, {digests["rc-2"]}) == set()  # rc-2 had no hidden tag: gone
    document = json.loads(report.read_text())
    kept_by_hidden = [e for e in document["deleted"] if e["digest"] == digests["rc-1"]]
    assert [e["tag"] for e in kept_by_hidden] == ["rc-1"]
    assert "tag rc-1approved" in kept_by_hidden[0]["reason"] and "still names it" in kept_by_hidden[0]["reason"]


def test_direct_mode_refuses_a_repository_whose_registry_hides_tags(
    registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    storage = tmp_path / "storage"
    digests = seed_rc(storage)
    server = registry_factory(storage=storage, readonly=True)
    before = tree(storage)
    report = tmp_path / "prune.json"
    with RecordingProxy(server.url, schedule=HIDING) as proxy:
        args = ("--storage-root", str(storage), "--registry", proxy.url, *RC_POLICY, "--no-progress")
        result = run_cli("prune", *args, "--json", str(report))
    assert result.code == 5, result.output
    assert "hides 1 tag that its storage holds (rc-1approved)" in result.output
    assert tree(storage) == before  # nothing deleted
    # The storage itself sees the hidden tag, so pruning from it alone is safe when asked for.
    server.stop()
    result = run_cli("prune", "--storage-root", str(storage), *RC_POLICY, "--no-progress")
    assert result.code == 0, result.output
    assert (storage / f"docker/registry/v2/repositories/{REPO}/_manifests/tags/rc-1approved").is_dir()
    assert not (storage / f"docker/registry/v2/repositories/{REPO}/_manifests/tags/rc-2").exists()
    assert digests["rc-1approved"] == digests["rc-1"]


def seed_schema1(storage: Path) -> str:
    writer = StorageWriter(storage)
    for n in (1, 2, 3):
        writer.image(REPO, f"3.3.0-alpha.{n}", created=f"2024-02-0{n}T00:00:00Z", label=f"a{n}")
    digest = writer.revision(REPO, schema1_manifest(writer, "old"))
    writer.tag(REPO, "old", digest)
    return digest


@pytest.mark.parametrize("mode", ["api", "direct"])
def test_schema1_is_listed_by_plan_and_usage_and_gates_an_upgrade(
    registry_factory: RegistryFactory, registry_line: str, mode: str, tmp_path: Path
) -> None:
    storage = tmp_path / "storage"
    digest = seed_schema1(storage)
    server = registry_factory(storage=storage)
    where = ("--registry", server.url) if mode == "api" else ("--storage-root", str(storage))
    policy = ("--repo", REPO, "--match", "alpha", "--keep", "1", "--order", "created")
    known = digest if mode == "direct" or registry_line == "2.8" else None  # 3.x cannot even say which

    plan = tmp_path / "plan.json"
    result = run_cli("plan", *where, *policy, "--json", str(plan))
    assert result.code == 0, result.output
    document = json.loads(plan.read_text())
    assert [e for e in document["kept"] if e["tag"] == "old"] == [
        {"repository": REPO, "tag": "old", "digest": known, "reason": SCHEMA1_REASON}
        | {"attachment": None, "subject": None}
    ]
    assert document["summary"]["deleted"] == 2  # schema1 does not block the repository

    usage = tmp_path / "usage.json"
    result = run_cli("usage", *where, *policy, "--upgrade-check", "--json", str(usage))
    assert result.code == 8, result.output
    document = json.loads(usage.read_text())
    assert document["outcome"] == "blocked"
    assert document["schema1"] == [{"repository": REPO, "tag": "old", "digest": known}]
    assert "cannot read" in document["message"]

    result = run_cli("prune", *where, *policy, "--no-progress")
    assert result.code == 0, result.output
    assert (storage / f"docker/registry/v2/repositories/{REPO}/_manifests/tags/old/current/link").exists()

    shutil.rmtree(storage / f"docker/registry/v2/repositories/{REPO}/_manifests/tags/old")
    result = run_cli("usage", *where, *policy, "--upgrade-check")
    assert result.code == 0, result.output
    assert "ready for registry 3.x" in result.output


@pytest.mark.parametrize("registry_line", ["3.0"], indirect=True)
def test_3_0_0_deleting_tags_while_deletes_are_disabled_is_a_misconfiguration(
    registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    storage = tmp_path / "storage"
    writer = StorageWriter(storage)
    for n in (1, 2, 3):
        writer.image(REPO, f"3.3.0-alpha.{n}", created=f"2024-02-0{n}T00:00:00Z", label=f"a{n}")
    server = registry_factory(storage=storage, delete_enabled=False)
    before = tree(storage)
    report = tmp_path / "prune.json"
    policy = ("--repo", REPO, "--match", "alpha", "--keep", "1", "--order", "created")
    result = run_cli("prune", "--registry", server.url, *policy, "--no-progress", "--json", str(report))
    assert result.code == 3, result.output
    document = json.loads(report.read_text())
    assert document["outcome"] == "failed" and document["summary"]["deleted"] == 0
    assert "misconfiguration" in document["errors"][0]["message"] and "3.1.1" in document["errors"][0]["hint"]
    assert tree(storage) == before


@pytest.mark.parametrize("registry_line", ["3.1"], indirect=True)
def test_the_4891_trigger_on_s3_hides_a_tag_and_the_prune_keeps_it(
    registry_factory: RegistryFactory, s3_server: S3Server, tmp_path: Path
) -> None:
    """distribution #4891 for real: 3.1.1 on S3 drops rc-1approved from its list while rc-1 exists."""
    template = tmp_path / "template"
    digests = seed_rc(template)
    bucket = s3_server.create_bucket("hidden")
    s3_server.upload_tree(template, bucket)
    server = registry_factory(s3=s3_server.registry_parameters(bucket))
    with RegistryState(server.url) as registry:
        listed = registry.tags(REPO)
    report = tmp_path / "prune.json"
    result = run_cli("prune", "--registry", server.url, *RC_POLICY, "--no-progress", "--json", str(report))
    assert result.code == 0, result.output
    with RegistryState(server.url) as registry:
        assert registry.resolve(REPO, "rc-1approved") == digests["rc-1"]
        assert registry.resolve(REPO, "rc-3") == digests["rc-3"]
        assert registry.resolve(REPO, "rc-1") is None and registry.resolve(REPO, "rc-2") is None
    # The trigger itself, so this test proves what it claims: the list hid the tag at planning.
    assert "rc-1approved" not in listed, f"3.1.1 on S3 listed every tag ({listed}): #4891 did not trigger"


@pytest.mark.parametrize("registry_line", ["3.1"], indirect=True)
def test_a_direct_s3_prune_refuses_a_repository_whose_registry_hides_tags(
    registry_factory: RegistryFactory, s3_server: S3Server, tmp_path: Path
) -> None:
    """The bucket's own tags against 3.1.1's list of them (#4891 for real): with --registry, the direct
    S3 backend leaves the repository alone and names the hidden tag, as the filesystem backend does."""
    template = tmp_path / "template"
    seed_rc(template)
    bucket = s3_server.create_bucket("hidden-direct")
    s3_server.upload_tree(template, bucket)
    server = registry_factory(s3=s3_server.registry_parameters(bucket), readonly=True)
    config = s3_server.write_registry_config(tmp_path / "config.yml", bucket)
    before = s3_server.objects(bucket)
    args = ("--registry-config", str(config), "--registry", server.url, *RC_POLICY, "--no-progress")
    result = run_cli("prune", *args)
    assert result.code == 5, result.output
    assert "hides 1 tag that its storage holds (rc-1approved)" in result.output
    assert s3_server.objects(bucket) == before  # nothing deleted
    # From the bucket alone every tag is seen, so that prune is safe when asked for.
    result = run_cli("prune", "--registry-config", str(config), *RC_POLICY, "--no-progress")
    assert result.code == 0, result.output
    keys = set(s3_server.objects(bucket))
    tags = f"docker/registry/v2/repositories/{REPO}/_manifests/tags/"
    assert any(key.startswith(tags + "rc-1approved/") for key in keys)
    assert not any(key.startswith(tags + "rc-2/") for key in keys)
