"""Write a distribution v2 filesystem layout directly (fast seeding for tests and benchmarks).

Pushing 100,000 tags through the API takes minutes; writing the same files
takes seconds. The layout, byte for byte what docker-registry 2.8 writes:

    docker/registry/v2/blobs/sha256/<aa>/<hex>/data
    docker/registry/v2/repositories/<name>/_layers/sha256/<hex>/link          (configs and layers)
    docker/registry/v2/repositories/<name>/_manifests/revisions/sha256/<hex>/link
    docker/registry/v2/repositories/<name>/_manifests/tags/<tag>/current/link
    docker/registry/v2/repositories/<name>/_manifests/tags/<tag>/index/sha256/<hex>/link

Link files hold ``sha256:<hex>`` with no newline.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.images import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    Pushed,
    make_layer,
    sha256,
)

V2 = Path("docker/registry/v2")


class StorageWriter:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.v2 = root / V2
        self._blobs: set[str] = set()
        self._links: set[Path] = set()

    def _write_link(self, path: Path, digest: str) -> None:
        if path in self._links:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(digest)
        self._links.add(path)

    def blob(self, data: bytes) -> str:
        digest = sha256(data)
        if digest not in self._blobs:
            hexpart = digest.split(":", 1)[1]
            path = self.v2 / "blobs" / "sha256" / hexpart[:2] / hexpart / "data"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            self._blobs.add(digest)
        return digest

    def _repo(self, repo: str) -> Path:
        return self.v2 / "repositories" / repo

    def layer_link(self, repo: str, digest: str) -> None:
        self._write_link(self._repo(repo) / "_layers" / "sha256" / digest.split(":", 1)[1] / "link", digest)

    def revision(self, repo: str, body: bytes) -> str:
        digest = self.blob(body)
        self._write_link(
            self._repo(repo) / "_manifests" / "revisions" / "sha256" / digest.split(":", 1)[1] / "link", digest
        )
        return digest

    def tag(self, repo: str, tag: str, digest: str) -> None:
        base = self._repo(repo) / "_manifests" / "tags" / tag
        self._write_link(base / "current" / "link", digest)
        self._write_link(base / "index" / "sha256" / digest.split(":", 1)[1] / "link", digest)

    def image(
        self,
        repo: str,
        tag: str | None,
        *,
        layers: list[tuple[bytes, str]] | None = None,
        created: str | None = "2024-01-01T00:00:00Z",
        label: str | None = None,
        architecture: str = "amd64",
    ) -> Pushed:
        """Same JSON as tests.support.images.Pusher.image, so both produce identical digests."""
        layers = layers if layers is not None else [make_layer("base", 128, seed=b"shared-base-layer")]
        config: dict[str, Any] = {
            "architecture": architecture,
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [diff for _, diff in layers]},
            "config": {"Labels": {"build": label if label is not None else (tag or "untagged")}},
        }
        if created is not None:
            config["created"] = created
        config_bytes = json.dumps(config, sort_keys=True).encode()
        config_digest = self.blob(config_bytes)
        self.layer_link(repo, config_digest)
        blob_refs = [(config_digest, len(config_bytes))]
        descriptors = []
        for data, _ in layers:
            digest = self.blob(data)
            self.layer_link(repo, digest)
            blob_refs.append((digest, len(data)))
            descriptors.append({"mediaType": DOCKER_LAYER, "size": len(data), "digest": digest})
        manifest = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "size": len(config_bytes), "digest": config_digest},
            "layers": descriptors,
        }
        body = json.dumps(manifest, indent=3).encode()
        digest = self.revision(repo, body)
        if tag is not None:
            self.tag(repo, tag, digest)
        return Pushed(digest, len(body), DOCKER_MANIFEST, blob_refs)

    def index(self, repo: str, tag: str, children: list[Pushed]) -> Pushed:
        platforms = [("amd64", None), ("arm64", "v8"), ("arm", "v7"), ("ppc64le", None)]
        entries = []
        for child, (arch, variant) in zip(children, platforms[: len(children)], strict=True):
            platform: dict[str, str] = {"architecture": arch, "os": "linux"}
            if variant:
                platform["variant"] = variant
            entries.append(
                {"mediaType": child.media_type, "size": child.size, "digest": child.digest, "platform": platform}
            )
        body = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": entries}, indent=3).encode()
        digest = self.revision(repo, body)
        self.tag(repo, tag, digest)
        return Pushed(digest, len(body), DOCKER_LIST, [])

    def uploads_dir(self, repo: str) -> None:
        """The empty ``_uploads`` directory a real push leaves behind."""
        (self._repo(repo) / "_uploads").mkdir(parents=True, exist_ok=True)


def tree(root: Path, *, ignore_uploads: bool = True) -> dict[str, bytes | None]:
    """Every path under ``root`` (directories as None), for comparing two storages."""
    found: dict[str, bytes | None] = {}
    for path in sorted(root.rglob("*")):
        relative = str(path.relative_to(root))
        if ignore_uploads and "/_uploads" in f"/{relative}":
            continue
        found[relative] = path.read_bytes() if path.is_file() else None
    return found
