"""The executor's backend for the bucket: remove exactly the keys the registry's DELETE removes.

distribution 2.8's manifest DELETE on the s3 driver (handlers/manifests.go, storage/driver/s3-aws):

1. ``linkedBlobStatter.Clear``: delete the key ``_manifests/revisions/<alg>/<hex>/link``
   and the legacy ``_layers/<alg>/<hex>/link`` when present;
2. ``tagStore.Lookup`` + ``Untag``: read ``current/link`` of *every* tag of the
   repository and delete every key under ``tags/<tag>/`` of each one naming the
   digest (the driver's Delete lists the prefix and sends DeleteObjects).

Here the executor hands over up to a hundred steps at a time
(:meth:`S3Deleter.delete_many`, after their undo records are on disk). One
fresh listing of the repository, taken right then, re-checks each step's tags
(only those still naming the digest are untagged, as the registry does) and
gives their keys; the keys leave in batched DeleteObjects of at most 1,000
keys, in three rounds that no kill can turn into a tag listed without its
link: every tag's ``index/`` keys, then the ``current/link`` keys, then the
revisions. A key S3 will not delete fails its own step, and that step's
later rounds are not sent. A crash between rounds leaves whole tags or
untagged revisions; a rerun converges (deleting a missing key succeeds).
Blobs are never touched.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from pipeline_step.backends.filesystem.source import read_manifest
from pipeline_step.backends.paths import GHOST_MIN_AGE, layer_link, manifests_path, revision_link
from pipeline_step.backends.s3.bucket import BATCH
from pipeline_step.backends.s3.layout import CURRENT, S3Layout, Snapshot
from pipeline_step.errors import (
    AuthenticationError,
    DeleteDisabledError,
    NotFoundError,
    RegistryError,
    RegistryUnreachableError,
)
from pipeline_step.planning.planner import DeleteStep
from pipeline_step.registry.model import DeleteResult, RegistryLine
from pipeline_step.support.concurrency import run_bounded

PROBE = ".registry-prune-probe"  # a key no registry writes: deleting it asks whether we may delete
# These stop the whole run: every step still pending fails with the same error.
FATAL = (DeleteDisabledError, AuthenticationError, RegistryUnreachableError)


class S3Deleter:
    def __init__(self, layout: S3Layout, *, workers: int = 8) -> None:
        self.s3_layout = layout
        self.workers = workers
        self._probed: set[str] = set()
        self._recent: dict[str, Snapshot] = {}  # the listing resolve_tags took, for manifests() right after
        self._lock = threading.Lock()

    def check_delete_enabled(self, repository: str) -> None:
        """``storage.delete.enabled`` guards only the API; here the question is whether these credentials
        may delete. One DeleteObjects of a key that cannot exist answers it and changes nothing."""
        with self._lock:
            if repository in self._probed:
                return
        layout = self.s3_layout
        layout.bucket.delete_keys([layout.key(f"{manifests_path(repository)}/{PROBE}")])
        with self._lock:
            self._probed.add(repository)

    def list_tags(self, repository: str) -> list[str]:
        return self.s3_layout.tags(repository)

    # -- one tag at a time (the Deleter protocol) ----------------------------------

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
        (result,) = self.delete_many([step])
        if isinstance(result, RegistryError):
            raise result
        return result

    # -- many at once (the executor's BatchDeleter) ---------------------------------

    def resolve_tags(self, repository: str, tags: Sequence[str]) -> dict[str, str | None]:
        """What :meth:`resolve_tag` answers for each tag, from one fresh listing of the repository
        (links whose ETag names no index digest are read, in parallel)."""
        layout = self.s3_layout
        snap = layout.listing(repository)
        with self._lock:
            self._recent[repository] = snap
        unknown = [tag for tag in tags if (entry := snap.tags.get(tag)) and entry.has_current and not entry.inferred()]
        errors: list[RegistryError] = []

        def read(tag: str) -> None:
            try:
                layout.digest_in(snap, repository, tag)
            except RegistryError as exc:
                errors.append(exc)

        run_bounded(unknown, read, workers=self.workers)
        if errors:
            raise errors[0]
        result: dict[str, str | None] = {}
        for tag in tags:
            digest = layout.digest_in(snap, repository, tag)
            linked = digest is not None and (digest in snap.revisions or self._legacy(repository, digest))
            result[tag] = digest if linked else None
        return result

    def manifests(self, repository: str, digests: Sequence[str]) -> dict[str, bytes | RegistryError]:
        """The verified bytes of each manifest for the undo log: linked per the listing
        :meth:`resolve_tags` just took, read from the planning cache (or S3)."""
        with self._lock:
            snap = self._recent.pop(repository, None)
        if snap is None:
            snap = self.s3_layout.listing(repository)
        found: dict[str, bytes | RegistryError] = {}
        lock = threading.Lock()

        def read(digest: str) -> None:
            result: bytes | RegistryError
            try:
                if digest not in snap.revisions and not self._legacy(repository, digest):
                    raise NotFoundError(f"manifest {digest} is not linked into {repository}")
                result = read_manifest(self.s3_layout, digest)[1]
            except RegistryError as exc:
                result = exc
            with lock:
                found[digest] = result

        run_bounded(dict.fromkeys(digests), read, workers=self.workers)
        return found

    def delete_many(self, steps: Sequence[DeleteStep]) -> list[DeleteResult | RegistryError]:
        """Delete the steps (one repository's) in batched rounds; each step's result or error, in order."""
        if not steps:
            return []
        layout = self.s3_layout
        repository = steps[0].repository
        snap = layout.listing(repository)  # fresh: right before the keys go
        results: list[DeleteResult | RegistryError] = [DeleteResult.DELETED] * len(steps)
        rounds: list[dict[str, list[int]]] = [{}, {}, {}]  # key -> the steps it belongs to, per round
        for number, step in enumerate(steps):
            revision = layout.key(revision_link(repository, step.digest))
            legacy = layout.key(layer_link(repository, step.digest))
            if step.digest not in snap.revisions and not layout.bucket.exists(legacy):
                results[number] = DeleteResult.ALREADY_GONE  # the API answers 404 and untags nothing
                continue
            try:
                doomed = [tag for tag in step.tags if layout.digest_in(snap, repository, tag) == step.digest]
            except RegistryError as exc:
                results[number] = exc
                continue
            # A tag gone or re-pushed since the executor's check is not untagged, as the registry would not.
            for key in (key for tag in doomed for key in snap.tags[tag].keys):
                rounds[1 if key.endswith(f"/{CURRENT}") else 0].setdefault(key, []).append(number)
            # Deleting a key that is not there succeeds, so the legacy link goes with the revision.
            for key in (revision, legacy):
                rounds[2].setdefault(key, []).append(number)
        for keys in rounds:
            pending = [key for key, owners in keys.items() if any(results[n] is DeleteResult.DELETED for n in owners)]
            for start in range(0, len(pending), BATCH):
                batch = pending[start : start + BATCH]
                try:
                    failed = layout.bucket.delete_batch(batch)
                except RegistryError as exc:
                    hit = range(len(steps)) if isinstance(exc, FATAL) else {n for k in batch for n in keys[k]}
                    for n in hit:
                        if results[n] is DeleteResult.DELETED:
                            results[n] = exc
                    continue
                for key, code in failed.items():
                    for n in keys[key]:
                        if results[n] is DeleteResult.DELETED:
                            results[n] = layout.bucket.batch_error({key: code}, 1)  # the step's own key
        return results

    def _legacy(self, repository: str, digest: str) -> bool:
        """Linked only the legacy way (2.1.0 linked some manifests into ``_layers``)."""
        return self.s3_layout.bucket.exists(self.s3_layout.key(layer_link(repository, digest)))

    # -- repairs ----------------------------------------------------------------

    def remove_ghost(self, repository: str, tag: str) -> bool:
        """Remove a tag listed without ``current/link``, or naming a manifest no longer linked (the
        registry's own DELETE, cut short), when it is old enough not to be a push in progress."""
        layout = self.s3_layout
        age = layout.tag_age(repository, tag)
        digest = layout.read_tag_link(repository, tag) if age is not None else None
        if age is None or age < GHOST_MIN_AGE or (digest is not None and layout.has_revision(repository, digest)):
            return False
        keys = layout.tag_keys(repository, tag)
        rest = [key for key in keys if not key.endswith(f"/{CURRENT}")]
        links = [key for key in keys if key.endswith(f"/{CURRENT}")]
        if rest:
            layout.bucket.delete_keys(rest)  # index/ first: the tag stays listed with its link meanwhile
        if links:
            layout.bucket.delete_keys(links)
        return True

    def reinstate(self, repository: str, digest: str, manifest: bytes, media_type: str) -> bool:
        return False  # like the filesystem backend: such tags are removed as ghosts

    def registry_line(self, repository: str) -> RegistryLine | None:
        return None  # the bucket's layout is the same for both lines; no registry is asked

    def untags(self, repository: str) -> bool:
        return False  # delete() removes exactly the planned tags' keys itself

    def untag(self, repository: str, tag: str) -> DeleteResult:
        raise NotImplementedError("direct mode removes tags with their manifest")

    def tidy(self, repository: str) -> None:
        return None  # keys leave in place: no trash to empty
