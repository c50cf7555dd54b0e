"""Seed benchmark registries by writing distribution's storage layout directly.

tests.support.storage_seed.StorageWriter writes the layout a real push writes
(tests/test_storage_seed.py proves it byte for byte), but it checks every
directory with ``mkdir(parents=True)``; at 100,000 tags the extra syscalls
cost minutes. :class:`FastWriter` writes the same files, in the same places,
with the same JSON (so the same digests), creating each directory once.
tests/test_benchmarks_smoke.py proves the two trees identical.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from tests.support.images import image_documents, make_layer

V2 = "docker/registry/v2"


@dataclass(frozen=True)
class SeedSpec:
    """``repositories`` repositories named ``bench/r000``… with ``tags`` tags each.

    One image per tag, or ``images`` images per repository, each carrying a
    run of consecutive tags (a build tagged several times).
    """

    repositories: int
    tags: int
    images: int | None = None

    @property
    def key(self) -> str:
        return f"{self.repositories}x{self.tags}" + (f"-over-{self.images}" if self.images else "")

    def describe(self) -> str:
        shape = f"over {self.images:,} images" if self.images else "one image each"
        return f"{self.repositories:,} x {self.tags:,} tags, {shape}"

    def names(self) -> list[str]:
        if self.repositories == 1:
            return ["bench/app"]
        return [f"bench/r{index:03d}" for index in range(self.repositories)]


def tag_name(index: int) -> str:
    return f"1.0.{index // 1000}-alpha.{index % 1000}"


class FastWriter:
    """Images with one shared base layer and a unique config each (like CI builds)."""

    def __init__(self, root: Path) -> None:
        self.v2 = os.path.join(root, V2)
        self._dirs: set[str] = set()
        layer, diff_id = make_layer("base", 128, seed=b"shared-base-layer")
        self.layer = layer
        self.diff_id = diff_id
        self.layer_digest = self._blob(layer)

    def _mkdirs(self, path: str) -> None:
        if path in self._dirs:
            return
        os.makedirs(path, exist_ok=True)
        self._dirs.add(path)

    def _write(self, directory: str, name: str, data: bytes) -> None:
        self._mkdirs(directory)
        with open(os.path.join(directory, name), "wb") as handle:
            handle.write(data)

    def _blob(self, data: bytes) -> str:
        hexpart = hashlib.sha256(data).hexdigest()
        self._write(os.path.join(self.v2, "blobs", "sha256", hexpart[:2], hexpart), "data", data)
        return f"sha256:{hexpart}"

    def _link(self, directory: str, digest: str) -> None:
        self._write(directory, "link", digest.encode())

    def image(self, repository: str, tag: str) -> str:
        """Same documents as StorageWriter.image(repo, tag) with the default layer."""
        repo = os.path.join(self.v2, "repositories", repository)
        documents = image_documents(tag, layers=[(self.layer, self.diff_id)])
        config_digest = self._blob(documents.config)
        self._link(os.path.join(repo, "_layers", "sha256", config_digest[7:]), config_digest)
        self._link(os.path.join(repo, "_layers", "sha256", self.layer_digest[7:]), self.layer_digest)
        digest = self._blob(documents.manifest)
        self._link(os.path.join(repo, "_manifests", "revisions", "sha256", digest[7:]), digest)
        self.tag(repository, tag, digest)
        return digest

    def tag(self, repository: str, tag: str, digest: str) -> None:
        """Point one more tag at an image (StorageWriter.tag)."""
        tag_dir = os.path.join(self.v2, "repositories", repository, "_manifests", "tags", tag)
        self._link(os.path.join(tag_dir, "current"), digest)
        self._link(os.path.join(tag_dir, "index", "sha256", digest[7:]), digest)

    def uploads_dir(self, repository: str) -> None:
        self._mkdirs(os.path.join(self.v2, "repositories", repository, "_uploads"))


def seed(root: Path, spec: SeedSpec) -> None:
    writer = FastWriter(root)
    images = spec.images or spec.tags
    for name in spec.names():
        digest, current = "", -1
        for index in range(spec.tags):
            image = index * images // spec.tags
            if image != current:
                digest, current = writer.image(name, tag_name(index)), image
            else:
                writer.tag(name, tag_name(index), digest)
        writer.uploads_dir(name)
