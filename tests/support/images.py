"""Push small but real images straight through the v2 API (test seeding).

Layers are genuine gzip'd tarballs; configs carry ``created``. Nothing here is
product code: it stands in for ``docker push`` to seed registries quickly.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from typing import Any

import httpx

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
ACCEPT_ALL = ", ".join((DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX))


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_layer(name: str, size: int = 256, *, seed: bytes | None = None) -> tuple[bytes, str]:
    """A gzip'd tar with one file of ``size`` random bytes. Returns (blob, diff_id)."""
    content = (seed or os.urandom(16)) * (size // 16 + 1) if seed else os.urandom(size)
    content = content[:size]
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(content))
    tar_bytes = raw.getvalue()
    return gzip.compress(tar_bytes, mtime=0), sha256(tar_bytes)


@dataclass
class Pushed:
    digest: str
    size: int
    media_type: str
    blobs: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class ImageDocuments:
    """The bytes of one image: config, layers and manifest (what a push uploads)."""

    config: bytes
    layers: list[bytes]
    manifest: bytes
    media_type: str

    def pushed(self, digest: str) -> Pushed:
        blobs = [(sha256(blob), len(blob)) for blob in (self.config, *self.layers)]
        return Pushed(digest, len(self.manifest), self.media_type, blobs)


def image_documents(
    tag: str | None,
    *,
    layers: list[tuple[bytes, str]] | None = None,
    created: str | None = "2024-01-01T00:00:00Z",
    oci: bool = False,
    label: str | None = None,
    architecture: str = "amd64",
) -> ImageDocuments:
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
    media_type = OCI_MANIFEST if oci else DOCKER_MANIFEST
    manifest = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {
            "mediaType": OCI_CONFIG if oci else DOCKER_CONFIG,
            "size": len(config_bytes),
            "digest": sha256(config_bytes),
        },
        "layers": [
            {"mediaType": OCI_LAYER if oci else DOCKER_LAYER, "size": len(data), "digest": sha256(data)}
            for data, _ in layers
        ],
    }
    body = json.dumps(manifest, indent=3).encode()
    return ImageDocuments(config_bytes, [data for data, _ in layers], body, media_type)


def index_document(children: list[Pushed], *, oci: bool = False) -> tuple[bytes, str]:
    """A manifest list (or OCI index) over ``children``, with made-up platforms."""
    media_type = OCI_INDEX if oci else DOCKER_LIST
    platforms = [("amd64", None), ("arm64", "v8"), ("arm", "v7"), ("ppc64le", None)]
    entries = []
    for child, (arch, variant) in zip(children, platforms[: len(children)], strict=True):
        platform: dict[str, str] = {"architecture": arch, "os": "linux"}
        if variant:
            platform["variant"] = variant
        entries.append(
            {"mediaType": child.media_type, "size": child.size, "digest": child.digest, "platform": platform}
        )
    body = json.dumps({"schemaVersion": 2, "mediaType": media_type, "manifests": entries}, indent=3).encode()
    return body, media_type


class Pusher:
    def __init__(self, url: str, *, headers: dict[str, str] | None = None, verify: Any = False) -> None:
        self.url = url.rstrip("/")
        self.client = httpx.Client(headers=headers or {}, verify=verify, timeout=30)
        self._uploaded: set[tuple[str, str]] = set()

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Pusher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def blob(self, repo: str, data: bytes) -> str:
        digest = sha256(data)
        if (repo, digest) in self._uploaded:
            return digest
        start = self.client.post(f"{self.url}/v2/{repo}/blobs/uploads/")
        assert start.status_code == 202, (start.status_code, start.text)
        location = start.headers["location"]
        if location.startswith("/"):
            location = self.url + location
        separator = "&" if "?" in location else "?"
        put = self.client.put(
            f"{location}{separator}digest={digest}", content=data, headers={"Content-Type": "application/octet-stream"}
        )
        assert put.status_code == 201, (put.status_code, put.text)
        self._uploaded.add((repo, digest))
        return digest

    def manifest(self, repo: str, reference: str, body: bytes, media_type: str) -> str:
        response = self.client.put(
            f"{self.url}/v2/{repo}/manifests/{reference}", content=body, headers={"Content-Type": media_type}
        )
        assert response.status_code == 201, (response.status_code, response.text)
        digest = response.headers["docker-content-digest"]
        assert digest == sha256(body)
        return digest

    def image(
        self,
        repo: str,
        tag: str | None,
        *,
        layers: list[tuple[bytes, str]] | None = None,
        created: str | None = "2024-01-01T00:00:00Z",
        oci: bool = False,
        label: str | None = None,
        architecture: str = "amd64",
    ) -> Pushed:
        """Push an image; each distinct ``label`` (default: the tag) gives a distinct config and digest."""
        docs = image_documents(tag, layers=layers, created=created, oci=oci, label=label, architecture=architecture)
        for blob in (docs.config, *docs.layers):
            self.blob(repo, blob)
        digest = self.manifest(repo, tag or sha256(docs.manifest), docs.manifest, docs.media_type)
        return docs.pushed(digest)

    def index(self, repo: str, tag: str, children: list[Pushed], *, oci: bool = False) -> Pushed:
        body, media_type = index_document(children, oci=oci)
        digest = self.manifest(repo, tag, body, media_type)
        return Pushed(digest, len(body), media_type, [])

    def tag(self, repo: str, source_tag: str, new_tag: str) -> str:
        """Point ``new_tag`` at the manifest ``source_tag`` points at (like docker tag + push)."""
        accept = ", ".join((DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX))
        got = self.client.get(f"{self.url}/v2/{repo}/manifests/{source_tag}", headers={"Accept": accept})
        assert got.status_code == 200, got.text
        return self.manifest(repo, new_tag, got.content, got.headers["content-type"])


def list_tags(url: str, repo: str, *, headers: dict[str, str] | None = None) -> list[str]:
    response = httpx.get(f"{url}/v2/{repo}/tags/list", headers=headers or {}, verify=False)
    assert response.status_code == 200, response.text
    return sorted(response.json().get("tags") or [])


def resolve(url: str, repo: str, reference: str, *, headers: dict[str, str] | None = None) -> str | None:
    accept = ", ".join((DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX))
    response = httpx.head(
        f"{url}/v2/{repo}/manifests/{reference}", headers={"Accept": accept, **(headers or {})}, verify=False
    )
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.status_code
    return response.headers["docker-content-digest"]
