"""The executor's backend for the bucket: remove exactly the keys the registry's DELETE removes.

distribution 2.8's manifest DELETE on the s3 driver (handlers/manifests.go, storage/driver/s3-aws):

1. ``linkedBlobStatter.Clear``: delete the key ``_manifests/revisions/<alg>/<hex>/link``
   and the legacy ``_layers/<alg>/<hex>/link`` when present;
2. ``tagStore.Lookup`` + ``Untag``: read ``current/link`` of *every* tag of the
   repository and delete every key under ``tags/<tag>/`` of each one naming the
   digest (the driver's Delete lists the prefix and sends DeleteObjects).

Here the plan knows the tags (the executor re-checked every other one), each
is re-read just before its keys go, and the keys leave in batched
DeleteObjects of at most 1,000 keys, in an order that no kill can turn into a
tag listed without its link: a tag's ``index/`` keys first, then its
``current/link``, then the revision. A crash between batches leaves a whole
tag or an untagged revision; a rerun converges (deleting a missing key
succeeds). Blobs are never touched.
"""

from __future__ import annotations

import threading

from pipeline_step.backends.filesystem.source import read_manifest
from pipeline_step.backends.paths import GHOST_MIN_AGE, layer_link, manifests_path, revision_link
from pipeline_step.backends.s3.layout import CURRENT, S3Layout
from pipeline_step.errors import NotFoundError
from pipeline_step.planning.planner import DeleteStep
from pipeline_step.registry.model import DeleteResult

PROBE = ".registry-prune-probe"  # a key no registry writes: deleting it asks whether we may delete


class S3Deleter:
    def __init__(self, layout: S3Layout) -> None:
        self.s3_layout = layout
        self._probed: set[str] = set()
        self._probe_lock = threading.Lock()

    def check_delete_enabled(self, repository: str) -> None:
        """``storage.delete.enabled`` guards only the API; here the question is whether these credentials
        may delete. One DeleteObjects of a key that cannot exist answers it and changes nothing."""
        with self._probe_lock:
            if repository in self._probed:
                return
        layout = self.s3_layout
        layout.bucket.delete_batch([layout.key(f"{manifests_path(repository)}/{PROBE}")])
        with self._probe_lock:
            self._probed.add(repository)

    def list_tags(self, repository: str) -> list[str]:
        return self.s3_layout.tags(repository)

    def resolve_tag(self, repository: str, tag: str) -> str | None:
        layout = self.s3_layout
        digest = layout.tag_digest(repository, tag)
        if digest is None or not layout.has_revision(repository, digest):
            return None  # what a HEAD through the API would answer: 404
        return digest

    def resolve_tag_manifest(self, repository: str, tag: str) -> tuple[str, bytes] | None:
        digest = self.resolve_tag(repository, tag)
        return None if digest is None else (digest, read_manifest(self.s3_layout, digest)[1])

    def index_children(self, repository: str, digest: str) -> tuple[str, ...]:
        if not self.s3_layout.has_revision(repository, digest):
            return ()
        manifest, _ = read_manifest(self.s3_layout, digest)
        return tuple(child.digest for child in manifest.children)

    def manifest_bytes(self, repository: str, digest: str) -> bytes:
        if not self.s3_layout.has_revision(repository, digest):
            raise NotFoundError(f"manifest {digest} is not linked into {repository}")
        return read_manifest(self.s3_layout, digest)[1]

    def delete(self, step: DeleteStep) -> DeleteResult:
        layout = self.s3_layout
        revision = layout.key(revision_link(step.repository, step.digest))
        legacy = layout.key(layer_link(step.repository, step.digest))
        if not (layout.bucket.exists(revision) or layout.bucket.exists(legacy)):
            return DeleteResult.ALREADY_GONE  # the API answers 404 and untags nothing
        doomed = [tag for tag in step.tags if layout.read_tag_link(step.repository, tag) == step.digest]
        self._remove_tags(step.repository, doomed)
        # Deleting a key that is not there succeeds, so the legacy link goes in the same batch.
        layout.bucket.delete_keys([revision, legacy])
        return DeleteResult.DELETED

    def _remove_tags(self, repository: str, tags: list[str]) -> None:
        layout = self.s3_layout
        keys = [key for tag in tags for key in layout.tag_keys(repository, tag)]
        links = [key for key in keys if key.endswith(f"/{CURRENT}")]
        rest = [key for key in keys if not key.endswith(f"/{CURRENT}")]
        if rest:
            layout.bucket.delete_keys(rest)  # index/ first: the tag still resolves meanwhile
        if links:
            layout.bucket.delete_keys(links)

    def remove_ghost(self, repository: str, tag: str) -> bool:
        """Remove a tag listed without ``current/link``, or naming a manifest no longer linked (the
        registry's own DELETE, cut short), when it is old enough not to be a push in progress."""
        layout = self.s3_layout
        age = layout.tag_age(repository, tag)
        digest = layout.read_tag_link(repository, tag) if age is not None else None
        if age is None or age < GHOST_MIN_AGE or (digest is not None and layout.has_revision(repository, digest)):
            return False
        self._remove_tags(repository, [tag])
        return True

    def reinstate(self, repository: str, digest: str, manifest: bytes, media_type: str) -> bool:
        return False  # like the filesystem backend: such tags are removed as ghosts

    def tidy(self, repository: str) -> None:
        return None  # keys leave in place: no trash to empty
