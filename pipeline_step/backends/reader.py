"""What reading a distribution storage needs, wherever it lives (a directory tree, a bucket).

The filesystem backend's inventory source reads through this, so the S3
backend reuses the same collection, ghost and legacy-link rules unchanged.
"""

from __future__ import annotations

from typing import Protocol

from pipeline_step.backends.paths import MANIFEST_LIMIT


class StorageReader(Protocol):
    def repositories(self) -> list[str]:
        """The catalog: every repository, sorted."""
        ...

    def revisions(self, repository: str) -> set[str]:
        """Every manifest digest linked into the repository (tagged or not)."""
        ...

    def tags(self, repository: str) -> list[str]:
        """Every listed tag (what the tags list answers), sorted."""
        ...

    def tag_digest(self, repository: str, tag: str) -> str | None:
        """The digest ``current/link`` names; None when there is none."""
        ...

    def tag_age(self, repository: str, tag: str) -> float | None:
        """Seconds since the tag last changed; None when it is gone."""
        ...

    def has_revision(self, repository: str, digest: str) -> bool: ...

    def read_blob(self, digest: str, *, limit: int = MANIFEST_LIMIT) -> bytes:
        """A blob's bytes, verified against its digest."""
        ...
