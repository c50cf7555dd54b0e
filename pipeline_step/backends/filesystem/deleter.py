"""The executor's backend for direct-storage mode: remove links the way the registry does.

distribution 2.8's manifest DELETE (handlers/manifests.go DeleteManifest) does:

1. ``linkedBlobStatter.Clear``: delete the revision link *file*
   ``_manifests/revisions/<alg>/<hex>/link`` and the legacy ``_layers/<alg>/<hex>/link``
   if present. The emptied ``<hex>/`` directories stay.
2. ``tagStore.Lookup`` + ``Untag``: read ``current/link`` of *every* tag of the
   repository (the O(tags) scan per DELETE) and delete the whole ``tags/<tag>/``
   directory of each one naming the digest.

The plan already knows which tags name each digest (the executor re-checks
every other tag before the first deletion), so step 2 here reads only those,
re-reading each ``current/link`` just before removing the directory. The end
state is the same tree; tests/test_storage_mode.py compares the two. We untag
before clearing the revision: a crash in between then leaves an untagged
revision (harmless, pruned by ``garbage-collect --delete-untagged``) instead of
tags that answer 404. A tag directory leaves in one atomic rename into the
repository's trash (then is removed there), so a kill at any moment leaves the
tag either whole or gone, never listed without its link; the next run empties
the trash and repairs such "ghost" tags left by older versions or other
tools. Blobs are never deleted. The one write is a rewritten referrers index (a
kept image's index without an entry being deleted): its blob, revision link and
tag links are written as the registry's own manifest PUT writes them, the tag's
``current/link`` last and by one rename.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from typing import Iterator

from pipeline_step.backends.filesystem.layout import GHOST_MIN_AGE, PERMISSION_HINT, StorageLayout, StorageLayoutError
from pipeline_step.backends.filesystem.source import read_manifest
from pipeline_step.backends.listing import check_unlisted
from pipeline_step.errors import DeleteDisabledError
from pipeline_step.planning.planner import DeleteStep
from pipeline_step.registry.digest import compute_digest
from pipeline_step.registry.model import DeleteResult, RegistryLine


class StoragePermissionError(DeleteDisabledError):
    """This user may not change the storage. Like deletes disabled in the API: fatal, exit 3."""


@contextlib.contextmanager
def _access(action: str) -> Iterator[None]:
    """Permission trouble mid-run stops the executor (a fatal error) instead of escaping it."""
    try:
        yield
    except StorageLayoutError as exc:
        raise StoragePermissionError(exc.message, hint=exc.hint) from None
    except PermissionError as exc:
        raise StoragePermissionError(f"cannot {action}: {exc.filename}: {exc.strerror}", hint=PERMISSION_HINT) from None


class StorageDeleter:
    def __init__(self, layout: StorageLayout) -> None:
        self.layout = layout

    def check_delete_enabled(self, repository: str) -> None:
        """``storage.delete.enabled`` guards only the API; here the question is whether we may write."""
        manifests = f"{self.layout.repository_dir(repository)}/_manifests"
        for directory in (manifests, f"{manifests}/tags", f"{manifests}/revisions"):
            if os.path.isdir(directory) and not os.access(directory, os.W_OK | os.X_OK):
                raise StoragePermissionError(f"cannot write to {directory}", hint=PERMISSION_HINT)

    def list_tags(self, repository: str) -> list[str]:
        with _access(f"list the tags of {repository}"):
            return self.layout.tags(repository)

    def resolve_tag(self, repository: str, tag: str) -> str | None:
        with _access(f"read tag {repository}:{tag}"):
            digest = self.layout.tag_digest(repository, tag)
            if digest is None or not self.layout.has_revision(repository, digest):
                return None  # what a HEAD through the API would answer: 404
            return digest

    def resolve_tag_manifest(self, repository: str, tag: str) -> tuple[str, bytes] | None:
        digest = self.resolve_tag(repository, tag)
        return None if digest is None else (digest, self.manifest_bytes(repository, digest))

    def index_children(self, repository: str, digest: str) -> tuple[str, ...]:
        with _access(f"read manifest {repository}@{digest}"):
            if not self.layout.has_revision(repository, digest):
                return ()
            manifest, _ = read_manifest(self.layout, digest)
            return tuple(child.digest for child in manifest.children)

    def manifest_bytes(self, repository: str, digest: str) -> bytes:
        with _access(f"read manifest {repository}@{digest}"):
            return read_manifest(self.layout, digest)[1]

    def delete(self, step: DeleteStep) -> DeleteResult:
        layout = self.layout
        revision = layout.revision_link(step.repository, step.digest)
        legacy = layout.layer_link(step.repository, step.digest)
        if not (os.path.isfile(revision) or os.path.isfile(legacy)):
            return DeleteResult.ALREADY_GONE  # the API answers 404 and untags nothing
        check_unlisted(step, self.resolve_tag_manifest)
        with _access(f"delete {step.repository}@{step.digest}"):
            if step.replacement is not None:
                self._put_under_tag(step.repository, step.tags[0], step.replacement)
            for tag in step.tags:
                if layout.tag_digest(step.repository, tag) == step.digest:
                    self._remove_tag_dir(step.repository, tag)
            for link in (revision, legacy):
                _remove_file(link)
        return DeleteResult.DELETED

    def remove_ghost(self, repository: str, tag: str) -> bool:
        """Remove a tag directory that has no ``current/link``, or one naming a manifest no longer
        linked (the registry's own DELETE, cut short), when it is old enough not to be a push in
        progress. False when it is no longer a ghost: it vanished, or it resolves again."""
        layout = self.layout
        with _access(f"repair tag {repository}:{tag}"):
            age = layout.tag_age(repository, tag)
            digest = layout.tag_digest(repository, tag) if age is not None else None
            if age is None or age < GHOST_MIN_AGE or (digest is not None and layout.has_revision(repository, digest)):
                return False
            self._remove_tag_dir(repository, tag)
        return True

    def registry_line(self, repository: str) -> RegistryLine | None:
        return None  # the storage tree is the same for both lines; no registry is asked

    def untags(self, repository: str) -> bool:
        return False  # delete() removes exactly the planned tags itself

    def untag(self, repository: str, tag: str) -> DeleteResult:
        raise NotImplementedError("direct mode removes tags with their manifest")

    def reinstate(self, repository: str, digest: str, manifest: bytes, media_type: str) -> bool:
        return False  # direct mode removes such tags as ghosts

    def tidy(self, repository: str) -> None:
        """Tag directories an interrupted run moved out but did not get to remove."""
        with _access(f"clean up {repository}"):
            _remove_tree(self.layout.trash_dir(repository))

    def _put_under_tag(self, repository: str, tag: str, body: bytes) -> None:
        """What distribution's manifest PUT by tag writes: the blob, the revision link, the tag's
        index link, then its ``current/link``."""
        layout = self.layout
        digest = compute_digest(body)
        blob = layout.blob_data(digest)
        if not os.path.isfile(blob):
            self._write(blob, body, repository)
        self._write(layout.revision_link(repository, digest), digest.encode(), repository)
        algorithm, _, hexpart = digest.partition(":")
        tag_dir = layout.tag_dir(repository, tag)
        self._write(f"{tag_dir}/index/{algorithm}/{hexpart}/link", digest.encode(), repository)
        self._write(f"{tag_dir}/current/link", digest.encode(), repository)

    def _write(self, path: str, data: bytes, repository: str) -> None:
        """Write through a file in the repository's trash, renamed into place: never half a file."""
        trash = self.layout.trash_dir(repository)
        os.makedirs(trash, exist_ok=True)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        scratch = f"{trash}/write.{uuid.uuid4().hex[:12]}"
        with open(scratch, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(scratch, path)

    def _remove_tag_dir(self, repository: str, tag: str) -> None:
        trash = self.layout.trash_dir(repository)
        os.makedirs(trash, exist_ok=True)
        gone = f"{trash}/{tag}.{uuid.uuid4().hex[:12]}"
        try:
            os.rename(self.layout.tag_dir(repository, tag), gone)
        except FileNotFoundError:
            return  # removed meanwhile
        _remove_tree(gone)


def _remove_file(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _remove_tree(path: str) -> None:
    # rmtree never follows a symlink out of the tree; a tag removed meanwhile is fine.
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path)
