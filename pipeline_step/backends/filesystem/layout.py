"""Distribution's filesystem storage layout: ``<root>/docker/registry/v2/`` + the paths of
:mod:`pipeline_step.backends.paths` (shared with the S3 backend), and the reads of the tree.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from pipeline_step.backends.paths import (
    GHOST_MIN_AGE,
    V2_PARTS,
    blob_data,
    layer_link,
    parse_link,
    repository_path,
    revision_link,
    tag_path,
)
from pipeline_step.backends.paths import MANIFEST_LIMIT as _MANIFEST_LIMIT
from pipeline_step.errors import DigestMismatchError, NotFoundError, RegistryProtocolError, UsageError
from pipeline_step.registry.digest import is_digest
from pipeline_step.registry.digest import matches as digest_matches

__all__ = ["GHOST_MIN_AGE", "PERMISSION_HINT", "TRASH", "V2_PARTS", "StorageLayout", "StorageLayoutError"]

_CHUNK = 64 * 1024  # os.read allocates its whole size up front
TRASH = ".registry-prune-removed"
PERMISSION_HINT = (
    "run registry-prune as the user that owns the registry's storage: on the registry host "
    "(sudo -u ...), or inside its container (docker exec <registry> registry-prune ...)"
)


class StorageLayoutError(UsageError):
    """The directory is not (readable as) a distribution v2 filesystem storage."""


def _permission_error(path: str, exc: OSError) -> StorageLayoutError:
    return StorageLayoutError(f"cannot access {path}: {exc.strerror or exc}", hint=PERMISSION_HINT)


@dataclass(frozen=True)
class StorageLayout:
    """Paths and link reads for one storage root (``storage.filesystem.rootdirectory``).

    Paths are plain strings joined with f-strings, and files are read with
    ``os.open``/``os.read``: at 100,000 tags, os.path.join and file objects
    cost more than the reads themselves.
    """

    root: Path
    v2: str  # <root>/docker/registry/v2
    _repository_dirs: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def open(cls, directory: Path | str) -> StorageLayout:
        """Validate ``directory`` (the rootdirectory, or its docker/registry/v2) or refuse it."""
        given = Path(directory).expanduser()
        try:
            resolved = given.resolve(strict=True)
        except FileNotFoundError:
            raise StorageLayoutError(
                f"storage root {str(given)!r} does not exist",
                hint="pass the registry's storage.filesystem.rootdirectory (default /var/lib/registry)",
            ) from None
        except OSError as exc:
            raise _permission_error(str(given), exc) from None
        root = resolved
        if resolved.parts[-3:] == V2_PARTS:
            root = resolved.parent.parent.parent
        v2 = root.joinpath(*V2_PARTS)
        missing = [name for name in ("repositories", "blobs") if not (v2 / name).is_dir()]
        if missing:
            raise StorageLayoutError(
                f"{str(given)!r} does not look like a distribution v2 filesystem storage "
                f"(no {', '.join(f'docker/registry/v2/{name}/' for name in missing)})",
                hint="pass the directory the registry's config names in storage.filesystem.rootdirectory "
                "(default /var/lib/registry); direct mode works only with the filesystem driver",
            )
        if not os.access(v2 / "repositories", os.R_OK | os.X_OK):
            raise StorageLayoutError(f"cannot read {v2 / 'repositories'}", hint=PERMISSION_HINT)
        return cls(root, str(v2))

    @property
    def label(self) -> str:
        """Stands in for the registry URL in reports, audit logs and the lock key."""
        return f"file://{self.root}"

    # -- paths ---------------------------------------------------------------

    def repository_dir(self, repository: str) -> str:
        found = self._repository_dirs.get(repository)
        if found is None:
            found = f"{self.v2}/{repository_path(repository)}"
            self._repository_dirs[repository] = found
        return found

    def tags_dir(self, repository: str) -> str:
        return f"{self.repository_dir(repository)}/_manifests/tags"

    def tag_dir(self, repository: str, tag: str) -> str:
        return f"{self.v2}/{tag_path(repository, tag)}"

    def trash_dir(self, repository: str) -> str:
        """Where tag directories go on their way out: inside ``_manifests`` (which neither the catalog
        nor the tag list reads), on the same filesystem, so moving one there is one atomic rename."""
        return f"{self.repository_dir(repository)}/_manifests/{TRASH}"

    def revision_link(self, repository: str, digest: str) -> str:
        return f"{self.v2}/{revision_link(repository, digest)}"

    def layer_link(self, repository: str, digest: str) -> str:
        return f"{self.v2}/{layer_link(repository, digest)}"

    def blob_data(self, digest: str) -> str:
        return f"{self.v2}/{blob_data(digest)}"

    # -- reads ---------------------------------------------------------------

    def repositories(self) -> list[str]:
        """Like distribution's catalog walk: a directory holding ``_layers`` is a repository;
        ``_``-directories are not descended; repositories may nest."""
        found: list[str] = []
        top = f"{self.v2}/repositories"

        def walk(directory: str, prefix: str) -> None:
            try:
                entries = sorted(
                    (entry.name for entry in os.scandir(directory) if entry.is_dir(follow_symlinks=False)),
                )
            except PermissionError as exc:
                raise _permission_error(directory, exc) from None
            if "_layers" in entries and prefix:
                found.append(prefix)
            for name in entries:
                if not name.startswith("_"):
                    walk(f"{directory}/{name}", f"{prefix}/{name}" if prefix else name)

        walk(top, "")
        return sorted(found)

    def tags(self, repository: str) -> list[str]:
        try:
            with os.scandir(self.tags_dir(repository)) as entries:
                return sorted(entry.name for entry in entries if entry.is_dir(follow_symlinks=False))
        except FileNotFoundError:
            return []
        except PermissionError as exc:
            raise _permission_error(self.tags_dir(repository), exc) from None

    def tag_age(self, repository: str, tag: str) -> float | None:
        """Seconds since the tag directory last changed; None when it is gone."""
        try:
            return time.time() - os.stat(self.tag_dir(repository, tag)).st_mtime
        except FileNotFoundError:
            return None

    def tag_digest(self, repository: str, tag: str) -> str | None:
        """The digest ``tags/<tag>/current/link`` names; None when there is none."""
        return self._read_link(f"{self.tag_dir(repository, tag)}/current/link")

    def has_revision(self, repository: str, digest: str) -> bool:
        """Whether the registry would find this manifest in the repository (revision or legacy layer link)."""
        return os.path.isfile(self.revision_link(repository, digest)) or os.path.isfile(
            self.layer_link(repository, digest)
        )

    def revisions(self, repository: str) -> set[str]:
        """Every manifest revision linked into the repository (tagged or not).

        A DELETE leaves the revision's directory behind without its ``link``;
        only directories that still hold one count.
        """
        base = f"{self.repository_dir(repository)}/_manifests/revisions"
        found: set[str] = set()
        try:
            algorithms = [entry.name for entry in os.scandir(base) if entry.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            return found
        except PermissionError as exc:
            raise _permission_error(base, exc) from None
        for algorithm in algorithms:
            with os.scandir(f"{base}/{algorithm}") as entries:
                for entry in entries:
                    digest = f"{algorithm}:{entry.name}"
                    if is_digest(digest) and os.path.isfile(f"{entry.path}/link"):
                        found.add(sys.intern(digest))
        return found

    def blobs(self) -> Iterator[tuple[str, int]]:
        """(digest, size) of every blob in the store, ``blobs/<alg>/<hex[:2]>/<hex>/data``."""
        for algorithm in _subdirectories(f"{self.v2}/blobs"):
            for prefix in _subdirectories(algorithm):
                for blob in _subdirectories(prefix):
                    digest = f"{os.path.basename(algorithm)}:{os.path.basename(blob)}"
                    try:
                        size = os.stat(f"{blob}/data").st_size
                    except FileNotFoundError:
                        continue  # GC or an upload is changing the store under us
                    if is_digest(digest):
                        yield digest, size

    def read_blob(self, digest: str, *, limit: int = _MANIFEST_LIMIT) -> bytes:
        """A blob's bytes, verified against its digest."""
        path = self.blob_data(digest)
        try:
            data = _read_file(path, limit + 1)
        except FileNotFoundError:
            raise NotFoundError(f"blob {digest} is missing from the storage") from None
        except PermissionError as exc:
            raise _permission_error(path, exc) from None
        if len(data) > limit:
            raise RegistryProtocolError(f"blob {digest} is larger than {limit} bytes")
        if not digest_matches(data, digest):
            raise DigestMismatchError(
                f"blob {digest} in the storage does not hash to its digest",
                hint="the storage is corrupt; nothing that references it is deleted",
            )
        return data

    def _read_link(self, path: str) -> str | None:
        try:
            content = _read_file(path, 200)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except PermissionError as exc:
            raise _permission_error(path, exc) from None
        # One string per digest however many tags and sets refer to it.
        return sys.intern(parse_link(content, path))


def _read_file(path: str, limit: int) -> bytes:
    """Up to ``limit`` bytes of a file in three syscalls, no file object.

    A short read of a regular file means end of file; were it ever cut short
    otherwise, the digest check or the link's format check fails, which keeps
    the tag (nothing is deleted on a read we cannot trust).
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, min(limit, _CHUNK))
        if len(data) < _CHUNK:
            return data
        chunks = [data]  # a big manifest or config: read on, up to the limit
        size = len(data)
        while size < limit and (chunk := os.read(fd, min(_CHUNK, limit - size))):
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _subdirectories(path: str) -> list[str]:
    try:
        with os.scandir(path) as entries:
            return [entry.path for entry in entries if entry.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []
    except PermissionError as exc:
        raise _permission_error(path, exc) from None
