"""A repository written straight to storage for the fault, restore and secrets tests.

``team/app`` holds ``count`` alphas, two releases, ``latest`` on an old alpha
(so that alpha survives only through the shared digest), a kept manifest list
``multi``, and an old alpha that is itself an index: one of its children is
shared with ``multi`` (kept), the other is only its own (deleted with it).
With ``--match alpha --keep KEEP`` the plan is known without asking the tool.
The alphas are numbered from ``first``: from 10, no tag name is a prefix of another,
which registry 3.1.1 on S3 needs to list them all (distribution #4891).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.support.images import Pushed
from tests.support.storage_seed import StorageWriter

REPO = "team/app"
LATEST_ON = 3  # latest points at the third alpha (3.3.0-alpha.3)
INDEX_ALPHA = 2  # the second alpha (3.3.0-alpha.2) is a manifest list
RELEASES = ("3.1.0", "3.2.0")


def alpha(n: int) -> str:
    return f"3.3.0-alpha.{n}"


@dataclass
class SeededStorage:
    storage: Path
    repo: str
    count: int
    keep: int
    tags: dict[str, str]  # every tag -> digest
    shared_child: Pushed  # child of both multi and the alpha index: must survive
    multi_only_child: Pushed  # child of multi only: must survive
    own_child: Pushed  # child of the alpha index only: deleted with it
    first: int = 1  # the first alpha's number

    @property
    def policy(self) -> tuple[str, ...]:
        return ("--repo", self.repo, "--match", "alpha", "--keep", str(self.keep))

    @property
    def protected(self) -> dict[str, str]:
        """Tags kept whatever the ordering: protected, not candidates, or sharing latest's digest."""
        names = {"latest", *RELEASES, "multi", alpha(self.first + LATEST_ON - 1)}
        return {tag: digest for tag, digest in self.tags.items() if tag in names}

    @property
    def expected_kept(self) -> dict[str, str]:
        """Every tag the planned end state keeps, with its digest."""
        last = self.first + self.count - 1
        newest = {alpha(n) for n in range(last - self.keep + 1, last + 1)}
        return {tag: digest for tag, digest in self.tags.items() if tag in newest or tag in self.protected}

    @property
    def expected_deleted(self) -> dict[str, str]:
        kept = self.expected_kept
        return {tag: digest for tag, digest in self.tags.items() if tag not in kept}

    @property
    def kept_digests(self) -> set[str]:
        """Every manifest the end state needs: kept tags' digests and the kept list's children."""
        return {*self.expected_kept.values(), self.shared_child.digest, self.multi_only_child.digest}


def write_app(root: Path, *, count: int = 40, keep: int = 10, repo: str = REPO, first: int = 1) -> SeededStorage:
    """Write the repository under ``root``, a registry's storage directory (about 5 ms per tag)."""
    writer = StorageWriter(root)
    tags: dict[str, str] = {}
    index_alpha, latest_on = first + INDEX_ALPHA - 1, first + LATEST_ON - 1
    for n in range(first, first + count):
        if n == index_alpha:
            continue
        created = f"2024-{1 + n // 28 % 12:02d}-{1 + n % 28:02d}T00:00:00Z"
        tags[alpha(n)] = writer.image(repo, alpha(n), created=created).digest
    for version in RELEASES:
        tags[version] = writer.image(repo, version).digest
    tags["latest"] = tags[alpha(latest_on)]
    writer.tag(repo, "latest", tags["latest"])
    shared = writer.image(repo, None, label="multi-amd64", architecture="amd64")
    arm = writer.image(repo, None, label="multi-arm64", architecture="arm64")
    tags["multi"] = writer.index(repo, "multi", [shared, arm]).digest
    own = writer.image(repo, None, label="alpha-index-arm64", architecture="arm64")
    tags[alpha(index_alpha)] = writer.index(repo, alpha(index_alpha), [shared, own]).digest
    writer.uploads_dir(repo)
    return SeededStorage(root, repo, count, keep, tags, shared, arm, own, first)
