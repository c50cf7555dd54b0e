"""Distribution's layout in a bucket: the paths of :mod:`pipeline_step.backends.paths` under
``<rootdirectory>/docker/registry/v2/``, read the way :class:`~pipeline_step.backends.reader.StorageReader`
asks.

A repository is read from one listing of its ``_manifests/`` keys (revisions
and tags together, 1,000 keys a page) taken by :meth:`S3Layout.snapshot`;
while a snapshot is held, tag names, ages and missing ``current/link`` keys
come from it, and tag links prefetched in parallel are served from it.
Without one (the executor's re-checks), every answer is read fresh.

A listing also tells most tags' digests without reading their links: the
registry writes ``index/<digest>/link`` before ``current/link``, so the
current link names one of the tag's index digests, and the ETag S3 lists for
a single-part upload is the MD5 of its content. Where no index digest matches
the ETag (SSE-KMS buckets, links written by other tools), the link is read.

Manifests are immutable and verified against their digest, so the bytes read
while planning are kept (up to :data:`CACHE_BYTES`) for the undo log.
"""

from __future__ import annotations

import hashlib
import sys
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone

from pipeline_step.backends.paths import (
    MANIFEST_LIMIT,
    blob_data,
    layer_link,
    manifests_path,
    parse_link,
    revision_digest,
    revision_link,
    tag_current_link,
    tag_path,
    tags_path,
)
from pipeline_step.backends.registry_config import S3Location
from pipeline_step.backends.s3.bucket import Bucket
from pipeline_step.errors import DigestMismatchError, NotFoundError, RegistryError, UsageError
from pipeline_step.registry.digest import matches as digest_matches

CURRENT = "current/link"
CACHE_BYTES = 32 * 1024 * 1024  # manifests kept from planning for the undo log; beyond this, read again


def link_etag(digest: str) -> str:
    """The ETag of a link object naming ``digest``, as S3 computes it for a single-part upload."""
    return hashlib.md5(digest.encode("ascii"), usedforsecurity=False).hexdigest()


@dataclass
class TagKeys:
    keys: list[str] = field(default_factory=list)
    modified: datetime | None = None
    current_etag: str | None = None  # None: no current/link listed
    index: list[str] = field(default_factory=list)  # the digests of index/<alg>/<hex>/link

    @property
    def has_current(self) -> bool:
        return self.current_etag is not None

    def inferred(self) -> str | None:
        """The digest ``current/link`` holds, told by its ETag; None when the link must be read."""
        return next((digest for digest in self.index if link_etag(digest) == self.current_etag), None)


@dataclass
class Snapshot:
    """One listing of a repository's ``_manifests/``, and the tag links read from it."""

    revisions: set[str]
    tags: dict[str, TagKeys]
    digests: dict[str, str | RegistryError | None] = field(default_factory=dict)


class S3Layout:
    def __init__(self, bucket: Bucket, location: S3Location) -> None:
        self.bucket = bucket
        self.location = location
        self.v2 = location.v2_prefix
        self._snapshots: dict[str, Snapshot] = {}
        self._lock = threading.Lock()
        self._cache: dict[str, bytes] = {}
        self._cached = 0

    @property
    def label(self) -> str:
        return self.location.label

    def key(self, relative: str) -> str:
        return f"{self.v2}{relative}"

    def check(self) -> None:
        """Refuse a bucket (or rootdirectory) that holds no registry storage; maps bad credentials too."""
        for _ in self.bucket.listing(self.key("repositories/")):
            return
        raise UsageError(
            f"s3://{self.bucket.name}/{self.v2} holds no repositories: not this registry's storage",
            hint="check storage.s3.rootdirectory (and the bucket) in the registry config",
        )

    # -- snapshots ----------------------------------------------------------------

    def listing(self, repository: str) -> Snapshot:
        """One fresh listing of the repository's ``_manifests/``: revisions, and every tag's keys."""
        base = f"{self.key(manifests_path(repository))}/"
        revisions: set[str] = set()
        tags: dict[str, TagKeys] = {}
        for item in self.bucket.listing(base):
            relative = item.key[len(base) :]
            if relative.startswith("revisions/"):
                digest = revision_digest(relative[len("revisions/") :])
                if digest is not None:
                    revisions.add(sys.intern(digest))
            elif relative.startswith("tags/"):
                name, _, rest = relative[len("tags/") :].partition("/")
                if not name or not rest:
                    continue
                entry = tags.setdefault(name, TagKeys())
                entry.keys.append(item.key)
                entry.modified = item.modified if entry.modified is None else max(entry.modified, item.modified)
                if rest == CURRENT:
                    entry.current_etag = item.etag
                elif rest.startswith("index/"):
                    digest = revision_digest(rest[len("index/") :])
                    if digest is not None:
                        entry.index.append(digest)
        return Snapshot(revisions, tags)

    def snapshot(self, repository: str) -> Snapshot:
        """A fresh listing, held for the repository's reads until :meth:`forget`."""
        snap = self.listing(repository)
        with self._lock:
            self._snapshots[repository] = snap
        return snap

    def digest_in(self, snap: Snapshot, repository: str, tag: str) -> str | None:
        """What ``current/link`` names in this listing: from its ETag, a read already made, or a read."""
        entry = snap.tags.get(tag)
        if entry is None or not entry.has_current:
            return None
        inferred = entry.inferred()
        if inferred is not None:
            return inferred
        if tag in snap.digests:
            known = snap.digests[tag]
            if isinstance(known, RegistryError):
                raise known
            return known
        found = snap.digests[tag] = self.read_tag_link(repository, tag)
        return found

    def forget(self, repository: str) -> None:
        with self._lock:
            self._snapshots.pop(repository, None)

    def _held(self, repository: str) -> Snapshot | None:
        with self._lock:
            return self._snapshots.get(repository)

    # -- StorageReader ----------------------------------------------------------------

    def repositories(self) -> list[str]:
        """Like distribution's catalog walk: a "directory" holding ``_layers`` is a repository;
        ``_``-directories are not descended; repositories may nest."""
        found: list[str] = []
        top = self.key("repositories/")

        def walk(prefix: str, name: str) -> None:
            children = self.bucket.prefixes(prefix)
            if "_layers" in children and name:
                found.append(name)
            for child in children:
                if child and not child.startswith("_"):
                    walk(f"{prefix}{child}/", f"{name}/{child}" if name else child)

        walk(top, "")
        return sorted(found)

    def revisions(self, repository: str) -> set[str]:
        held = self._held(repository)
        return set(held.revisions) if held is not None else set(self.snapshot(repository).revisions)

    def tags(self, repository: str) -> list[str]:
        held = self._held(repository)
        if held is not None:
            return sorted(held.tags)
        return sorted(self.bucket.prefixes(f"{self.key(tags_path(repository))}/"))

    def tag_keys(self, repository: str, tag: str) -> list[str]:
        """Every key under ``tags/<tag>/``, read fresh."""
        return [item.key for item in self.bucket.listing(f"{self.key(tag_path(repository, tag))}/")]

    def tag_age(self, repository: str, tag: str) -> float | None:
        held = self._held(repository)
        if held is not None:
            entry = held.tags.get(tag)
            modified = entry.modified if entry is not None else None
        else:
            listed = list(self.bucket.listing(f"{self.key(tag_path(repository, tag))}/"))
            modified = max((item.modified for item in listed), default=None)
        if modified is None:
            return None
        return (datetime.now(timezone.utc) - modified).total_seconds()

    def read_tag_link(self, repository: str, tag: str) -> str | None:
        key = self.key(tag_current_link(repository, tag))
        fetched = self.bucket.get(key, limit=200)
        return None if fetched is None else sys.intern(parse_link(fetched.body, f"s3://{self.bucket.name}/{key}"))

    def tag_digest(self, repository: str, tag: str) -> str | None:
        held = self._held(repository)
        if held is not None:
            return self.digest_in(held, repository, tag)
        return self.read_tag_link(repository, tag)

    def has_revision(self, repository: str, digest: str) -> bool:
        held = self._held(repository)
        if held is not None and digest in held.revisions:
            return True
        return self.bucket.exists(self.key(revision_link(repository, digest))) or self.bucket.exists(
            self.key(layer_link(repository, digest))
        )

    def read_blob(self, digest: str, *, limit: int = MANIFEST_LIMIT) -> bytes:
        with self._lock:
            cached = self._cache.get(digest)
        if cached is not None and len(cached) <= limit:
            return cached
        fetched = self.bucket.get(self.key(blob_data(digest)), limit=limit)
        if fetched is None:
            raise NotFoundError(f"blob {digest} is missing from s3://{self.bucket.name}")
        if not digest_matches(fetched.body, digest):
            raise DigestMismatchError(
                f"blob {digest} in s3://{self.bucket.name} does not hash to its digest",
                hint="the storage is corrupt; nothing that references it is deleted",
            )
        body = fetched.body
        with self._lock:
            if self._cached + len(body) <= CACHE_BYTES and digest not in self._cache:
                self._cache[sys.intern(digest)] = body
                self._cached += len(body)
        return body
