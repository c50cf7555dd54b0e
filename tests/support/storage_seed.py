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

from pathlib import Path

from tests.support.images import Pushed, image_documents, index_document, sha256

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
        """The same bytes as tests.support.images.Pusher.image, so both produce identical digests."""
        docs = image_documents(tag, layers=layers, created=created, label=label, architecture=architecture)
        for blob in (docs.config, *docs.layers):
            self.layer_link(repo, self.blob(blob))
        digest = self.revision(repo, docs.manifest)
        if tag is not None:
            self.tag(repo, tag, digest)
        return docs.pushed(digest)

    def index(self, repo: str, tag: str, children: list[Pushed]) -> Pushed:
        body, media_type = index_document(children)
        digest = self.revision(repo, body)
        self.tag(repo, tag, digest)
        return Pushed(digest, len(body), media_type, [])

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
