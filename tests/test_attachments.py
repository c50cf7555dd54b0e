"""Signatures, attestations and referrers follow their image: issue 12's acceptance, with real clients.

The seed is pushed once per module, with cosign and oras against Debian's
docker-registry (2.8, no referrers API): ``team/app`` holds ``3.3.0-alpha.1`` ...
``alpha.20``, each a buildx-style index with an attestation manifest, signed by
cosign and carrying an SBOM attached by oras (which keeps the referrers tag
schema index ``sha256-<hex>``); alpha.1 and alpha.20 also carry a cosign
attestation; ``3.2.0`` is signed; ``latest`` is alpha.20. Each test prunes its
own copy of that storage.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support.buildx import BuildxImage, push_buildx_image
from tests.support.cli import policy_args, run_cli
from tests.support.images import ACCEPT_ALL, OCI_INDEX, Pushed, Pusher, list_tags, resolve
from tests.support.registry import RegistryFactory, RegistryServer, registry_binary
from tests.support.signing import Cosign, Oras, flatten
from tests.support.storage_seed import tree

REPO = "team/app"
SBOM_TYPE = "application/spdx+json"


def scheme(digest: str, suffix: str = "") -> str:
    return f"sha256-{digest.split(':', 1)[1]}{suffix}"


@dataclass
class Seed:
    storage: Path
    alphas: dict[int, BuildxImage] = field(default_factory=dict)
    sboms: dict[int, str] = field(default_factory=dict)  # alpha -> SBOM artifact digest
    signatures: dict[str, str] = field(default_factory=dict)  # subject digest -> signature manifest digest
    referrers: dict[str, str] = field(default_factory=dict)  # subject digest -> referrers index digest
    attestations: dict[str, str] = field(default_factory=dict)  # subject digest -> cosign .att manifest digest
    release: Pushed | None = None

    def digest(self, n: int) -> str:
        return self.alphas[n].index.digest


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seed]:
    try:
        registry_binary()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    work = tmp_path_factory.mktemp("attachments-seed")
    try:
        cosign, oras = Cosign(work / "cosign"), Oras(work / "oras")
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    server = RegistryServer(workdir=work / "reg", storage=work / "storage").start()
    seeded = Seed(work / "storage")
    try:
        url = server.url
        with Pusher(url) as pusher:
            for n in range(1, 21):
                image = push_buildx_image(
                    pusher, REPO, f"3.3.0-alpha.{n}", created=f"2026-01-{n:02d}T00:00:00Z", label=f"alpha-{n}"
                )
                seeded.alphas[n] = image
                cosign.sign(url, REPO, image.index.digest)
                sbom = json.dumps({"spdxVersion": "SPDX-2.3", "name": f"alpha-{n}", "packages": [n] * 64}).encode()
                seeded.sboms[n] = oras.attach(
                    url, REPO, image.index.digest, sbom, artifact_type=SBOM_TYPE, name="sbom.json"
                )
            for n in (1, 20):
                cosign.attest(url, REPO, seeded.digest(n), {"build": n})
            seeded.release = pusher.image(REPO, "3.2.0", oci=True, created="2025-12-01T00:00:00Z", label="3.2.0")
            cosign.sign(url, REPO, seeded.release.digest)
            pusher.tag(REPO, "3.3.0-alpha.20", "latest")
        for subject in [*(seeded.digest(n) for n in range(1, 21)), seeded.release.digest]:
            seeded.signatures[subject] = must_resolve(url, scheme(subject, ".sig"))
            if subject != seeded.release.digest:
                seeded.referrers[subject] = must_resolve(url, scheme(subject))
        for n in (1, 20):
            seeded.attestations[seeded.digest(n)] = must_resolve(url, scheme(seeded.digest(n), ".att"))
    finally:
        server.stop()
    yield seeded


def must_resolve(url: str, reference: str) -> str:
    digest = resolve(url, REPO, reference)
    assert digest is not None, reference
    return digest


def serve_copy(seed: Seed, registry_factory: RegistryFactory, tmp_path: Path, name: str = "reg") -> RegistryServer:
    storage = tmp_path / f"{name}-storage"
    shutil.copytree(seed.storage, storage)
    return registry_factory(name, storage=storage)


def blob_sizes(storage: Path) -> dict[str, int]:
    return {f"sha256:{path.parent.name}": path.stat().st_size for path in storage.rglob("blobs/sha256/*/*/data")}


def manifests_of(seed: Seed, n: int) -> dict[str, str]:
    """Every manifest alpha.n brought along: what, -> digest."""
    subject = seed.digest(n)
    found = {
        "index": subject,
        "platform image": seed.alphas[n].platform.digest,
        "buildx attestation": seed.alphas[n].attestation.digest,
        "signature": seed.signatures[subject],
        "SBOM": seed.sboms[n],
        "referrers index": seed.referrers[subject],
    }
    if subject in seed.attestations:
        found["cosign attestation"] = seed.attestations[subject]
    return found


def exists(url: str, digest: str, repo: str = REPO) -> bool:
    return resolve(url, repo, digest) is not None


def kept_subjects(seed: Seed) -> list[str]:
    assert seed.release is not None
    return [*(seed.digest(n) for n in range(16, 21)), seed.release.digest]


# -- the acceptance ------------------------------------------------------------------------


def test_prune_keep_5_takes_every_attachment_of_the_15_deleted_images_and_leaves_the_kept_ones_whole(
    seed: Seed, registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    server = serve_copy(seed, registry_factory, tmp_path)
    url = server.url
    oras = Oras(tmp_path / "oras")
    before = {subject: flatten(oras.discover(url, REPO, subject)) for subject in kept_subjects(seed)}
    assert all(before[seed.digest(n)] for n in range(16, 21))

    plan = run_cli("plan", *policy_args(url, keep=5), "--json", str(tmp_path / "plan.json"))
    assert plan.code == 0, plan.output
    planned = json.loads((tmp_path / "plan.json").read_text())
    # Requests: /v2/, the tag list, one GET per tag and per index child; one referrers probe (404 on 2.8).
    tags = list_tags(url, REPO)
    children = 20 * 2 + 20  # each alpha index: its image and attestation; each referrers index: the SBOM
    assert len(tags) == 20 + 1 + 1 + 21 + 2 + 20
    assert planned["requests"] == 2 + len(tags) + children + 1 + 1  # ... and the registry-line probe

    result = run_cli("prune", *policy_args(url, keep=5), "--json", str(tmp_path / "prune.json"))
    assert result.code == 0, result.output
    report = json.loads((tmp_path / "prune.json").read_text())
    assert report["deleted"] == planned["deleted"]  # the dry plan is the run

    kept_alphas = [f"3.3.0-alpha.{n}" for n in range(16, 21)]
    expected = {*kept_alphas, "3.2.0", "latest"}
    expected |= {scheme(subject, ".sig") for subject in kept_subjects(seed)}
    expected |= {scheme(seed.digest(n)) for n in range(16, 21)} | {scheme(seed.digest(20), ".att")}
    assert set(list_tags(url, REPO)) == expected
    for n in range(1, 16):
        for what, digest in manifests_of(seed, n).items():
            assert not exists(url, digest), f"alpha.{n}'s {what} survived"
    for n in range(16, 21):
        for what, digest in manifests_of(seed, n).items():
            assert exists(url, digest), f"alpha.{n}'s {what} is gone"
    assert {subject: flatten(oras.discover(url, REPO, subject)) for subject in kept_subjects(seed)} == before

    summary = report["summary"]
    assert summary["deleted"] == 15 and summary["kept"] == 7
    assert summary["attachment_kinds"] == {"signature": 15, "attestation": 16, "SBOM": 15, "referrers index": 15}
    assert summary["attachments_deleted"] == 61
    assert summary["manifests_deleted"] == 15 * 6 + 1
    assert summary["attachments_kept"] == 6 + 1 + 5 + 5 + 5  # signatures, alpha.20's .att, buildx, SBOMs, indexes
    assert (
        "deleted 15 tags and their 61 attachments (15 signatures, 16 attestations, 15 SBOMs and 15 referrers "
        in (report["message"])
    )
    reasons = {entry["tag"]: entry["reason"] for entry in report["kept"]}
    assert reasons[scheme(seed.digest(16), ".sig")] == "signature of 3.3.0-alpha.16"
    assert reasons[scheme(seed.digest(16))] == "referrers index of 3.3.0-alpha.16"
    assert reasons[scheme(seed.digest(20), ".att")].startswith("attestation of ")
    deleted = {(entry["tag"], entry["attachment"]): entry["reason"] for entry in report["deleted"]}
    assert deleted[(scheme(seed.digest(1), ".sig"), "signature")] == "signature of deleted 3.3.0-alpha.1"
    assert deleted[(None, "SBOM")].startswith("SBOM of deleted 3.3.0-alpha.")

    # Garbage collection frees exactly the blobs the prediction counted: images' and attachments' alike.
    server.stop()
    before_gc = blob_sizes(server.storage)
    server.garbage_collect()
    freed = {digest: size for digest, size in before_gc.items() if digest not in blob_sizes(server.storage)}
    assert sum(freed.values()) == report["predicted_reclaim_bytes"]
    alpha1 = manifests_of(seed, 1)
    assert {alpha1["signature"], alpha1["SBOM"], alpha1["referrers index"], alpha1["cosign attestation"]} <= set(freed)
    assert {blob for blob, _ in seed.alphas[1].attestation_blobs} <= set(freed)


def test_a_plan_matching_every_tag_never_makes_a_signature_or_referrers_tag_a_candidate(
    seed: Seed, registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    url = serve_copy(seed, registry_factory, tmp_path).url
    args = ("plan", "--registry", url, "--repo", REPO, "--match", ".*", "--keep", "3", "--order", "created")
    result = run_cli(*args, "--json", str(tmp_path / "plan.json"))
    assert result.code == 0, result.output
    report = json.loads((tmp_path / "plan.json").read_text())
    entries = report["deleted"] + report["kept"]
    named = [entry for entry in entries if entry["tag"] and entry["tag"].startswith("sha256-")]
    assert len(named) == 21 + 2 + 20
    for entry in named:
        assert entry["attachment"] in ("signature", "attestation", "referrers index")
        assert "beyond the newest" not in entry["reason"] and "among the newest" not in entry["reason"]
    # An index's age is its newest platform image's: buildx images order by creation time.
    assert all("creation time unknown" not in entry["reason"] for entry in entries)
    deleted_images = {entry["tag"] for entry in report["deleted"] if entry["tag"] and not entry["attachment"]}
    assert deleted_images == {f"3.3.0-alpha.{n}" for n in range(1, 18)}
    assert report["summary"]["attachments_deleted"] == 17 * 4 + 1


def test_orphans_are_listed_with_their_bytes_and_pruned_only_when_asked_and_never_while_another_repository_holds_them(
    seed: Seed, registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    url = serve_copy(seed, registry_factory, tmp_path).url
    gone = seed.digest(3)
    # Another tool deleted alpha.3 and left its signature, attestation index and SBOM behind.
    assert httpx.delete(f"{url}/v2/{REPO}/manifests/{gone}").status_code == 202
    # cosign with COSIGN_REPOSITORY=team/sigs keeps alpha.20's signature away from the image.
    copy_manifest(url, REPO, "team/sigs", seed.signatures[seed.digest(20)], scheme(seed.digest(20), ".sig"))
    repos = ("--repo", REPO, "--repo", "team/sigs")

    plan = run_cli(
        "plan", "--registry", url, *repos, "--match", "alpha", "--keep", "5", "--json", str(tmp_path / "p.json")
    )
    assert plan.code == 0, plan.output
    report = json.loads((tmp_path / "p.json").read_text())
    orphans = {(o["repository"], o["digest"]): o for o in report["orphans"]}
    ours = {seed.signatures[gone], seed.referrers[gone], seed.sboms[3]}
    assert set(orphans) == {(REPO, d) for d in ours} | {("team/sigs", seed.signatures[seed.digest(20)])}
    assert all(o["action"] == "keep" and o["bytes"] > 0 and o["subject"] for o in orphans.values())
    assert all("orphans: delete prunes it" in o["reason"] for o in orphans.values())
    assert report["orphan_bytes"] > 0 and report["summary"]["orphans"] == 4
    assert "4 orphans (attachments whose subject is gone) hold" in plan.stdout

    usage = run_cli(
        "usage", "--registry", url, *repos, "--match", "alpha", "--keep", "5", "--json", str(tmp_path / "u.json")
    )
    assert usage.code == 0, usage.output
    listed = json.loads((tmp_path / "u.json").read_text())
    assert {(o["repository"], o["digest"]) for o in listed["orphans"]} == set(orphans)
    assert listed["orphan_bytes"] == report["orphan_bytes"] and "4 orphans" in usage.stdout

    config = tmp_path / "prune.yml"
    policy = "policy: {match: alpha, keep: 5, orphans: delete}"
    config.write_text(f"registry: {{url: {url}}}\nrepositories: [{REPO}, team/sigs]\n{policy}\n")
    pruned = run_cli("prune", "--config", str(config), "--json", str(tmp_path / "r.json"))
    assert pruned.code == 0, pruned.output
    done = json.loads((tmp_path / "r.json").read_text())
    for digest in ours:
        assert not exists(url, digest)
    assert scheme(gone, ".sig") not in list_tags(url, REPO) and scheme(gone) not in list_tags(url, REPO)
    held = [o for o in done["orphans"] if o["repository"] == "team/sigs"]
    assert len(held) == 1 and held[0]["action"] == "keep" and "lives in team/app" in held[0]["reason"]
    assert exists(url, seed.signatures[seed.digest(20)], "team/sigs")
    assert done["summary"]["orphans_deleted"] == 3


def copy_manifest(url: str, source: str, target: str, digest: str, tag: str) -> None:
    """Put ``source@digest`` (an image manifest) and its blobs into ``target`` under ``tag``."""
    with Pusher(url) as pusher:
        got = httpx.get(f"{url}/v2/{source}/manifests/{digest}", headers={"Accept": ACCEPT_ALL})
        document = got.json()
        for blob in [document["config"], *document["layers"]]:
            pusher.blob(target, httpx.get(f"{url}/v2/{source}/blobs/{blob['digest']}").content)
        pusher.manifest(target, tag, got.content, got.headers["content-type"])


def test_a_kept_images_referrers_index_survives_the_deletion_of_one_of_its_artifacts_without_that_entry(
    seed: Seed, registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    server = serve_copy(seed, registry_factory, tmp_path)
    url = server.url
    oras = Oras(tmp_path / "oras")
    stray, keeper = seed.digest(3), seed.digest(20)
    scan = oras.attach(
        url, REPO, stray, b'{"findings": []}', artifact_type="application/vnd.example.scan+json", name="scan.json"
    )
    list_in_index(url, keeper, scan)  # a client that copied alpha.3's referrer into alpha.20's list
    old_index = must_resolve(url, scheme(keeper))
    assert {d for _, d in flatten(oras.discover(url, REPO, keeper))} == {seed.sboms[20], scan}

    result = run_cli("prune", *policy_args(url, keep=5), "--json", str(tmp_path / "r.json"))
    assert result.code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert not exists(url, scan) and not exists(url, old_index)
    new_index = must_resolve(url, scheme(keeper))
    assert new_index != old_index
    listed = httpx.get(f"{url}/v2/{REPO}/manifests/{new_index}", headers={"Accept": OCI_INDEX}).json()
    assert [entry["digest"] for entry in listed["manifests"]] == [seed.sboms[20]]
    assert flatten(oras.discover(url, REPO, keeper)) == {(SBOM_TYPE, seed.sboms[20])}
    assert [entry["tag"] for entry in report["rewritten"]] == [scheme(keeper)]
    assert report["summary"]["indexes_rewritten"] == 1
    audit = [
        json.loads(line) for path in (tmp_path / "audit").glob("*.jsonl") for line in path.read_text().splitlines()
    ]
    assert any(r["event"] == "intent" and r["digest"] == old_index and r["tags"] == [scheme(keeper)] for r in audit)


def list_in_index(url: str, subject: str, referrer: str) -> None:
    tag = scheme(subject)
    index = httpx.get(f"{url}/v2/{REPO}/manifests/{tag}", headers={"Accept": OCI_INDEX}).json()
    manifest = httpx.get(f"{url}/v2/{REPO}/manifests/{referrer}", headers={"Accept": ACCEPT_ALL})
    index["manifests"].append(
        {
            "mediaType": manifest.headers["content-type"],
            "digest": referrer,
            "size": len(manifest.content),
            "artifactType": manifest.json()["artifactType"],
        }
    )
    body = json.dumps(index, separators=(",", ":")).encode()
    put = httpx.put(f"{url}/v2/{REPO}/manifests/{tag}", content=body, headers={"Content-Type": OCI_INDEX})
    assert put.status_code == 201, put.text


def test_the_api_and_the_filesystem_backend_end_on_identical_storage_trees(
    seed: Seed, registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    """With everything at once: attachments of deleted images, orphans, and a kept index to rewrite."""
    server = serve_copy(seed, registry_factory, tmp_path, "prepared")
    url = server.url
    oras = Oras(tmp_path / "oras")
    scan = oras.attach(
        url, REPO, seed.digest(4), b"{}", artifact_type="application/vnd.example.scan+json", name="s.json"
    )
    list_in_index(url, seed.digest(19), scan)
    assert httpx.delete(f"{url}/v2/{REPO}/manifests/{seed.digest(2)}").status_code == 202
    server.stop()
    api_root, direct_root = tmp_path / "api", tmp_path / "direct"
    shutil.copytree(server.storage, api_root)
    shutil.copytree(server.storage, direct_root)
    config = tmp_path / "prune.yml"
    config.write_text(f"repositories: [{REPO}]\npolicy: {{match: alpha, keep: 5, orphans: delete}}\n")

    served = registry_factory("api-registry", storage=api_root)
    via_api = run_cli("prune", "--config", str(config), "--registry", served.url, "--json", str(tmp_path / "api.json"))
    assert via_api.code == 0, via_api.output
    served.stop()
    direct = run_cli(
        "prune", "--config", str(config), "--storage-root", str(direct_root), "--json", str(tmp_path / "d.json")
    )
    assert direct.code == 0, direct.output

    api_report = json.loads((tmp_path / "api.json").read_text())
    direct_report = json.loads((tmp_path / "d.json").read_text())
    assert direct_report["deleted"] == api_report["deleted"]
    assert direct_report["rewritten"] == api_report["rewritten"] and len(api_report["rewritten"]) == 1
    assert direct_report["orphans"] == api_report["orphans"] and len(api_report["orphans"]) == 3
    assert direct_report["summary"] == api_report["summary"]
    assert tree(direct_root) == tree(api_root)
