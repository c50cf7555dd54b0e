"""The planner's vocabulary: actions, deletion phases, decisions and delete steps."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Action(str, Enum):
    DELETE = "delete"
    KEEP = "keep"
    REPAIR = "repair"  # a ghost tag (listed, no link) is removed; no manifest is touched


class Phase(int, Enum):
    """Deletion order: an index goes before its children, so no kept name ever
    points at an index whose children are already gone; attachments go after
    their subjects (a subject whose deletion fails keeps its signature), and a
    kept referrers index is rewritten before the referrers it stops listing go."""

    INDEX = 0
    IMAGE = 1
    ORPHAN_CHILD = 2
    REWRITE = 3  # a kept referrers index, put back under its tag without the deleted entries
    ATTACHMENT_INDEX = 4
    ATTACHMENT = 5
    ATTACHMENT_CHILD = 6


@dataclass(frozen=True, slots=True)
class Decision:
    repository: str
    tag: str | None  # None for an untagged child manifest
    digest: str | None  # None when the tag could not be resolved
    action: Action
    reason: str
    attachment: str | None = None  # its kind (signature, SBOM, ...) when this is an attachment
    subject: str | None = None  # the digest it is attached to


@dataclass(frozen=True, slots=True)
class DeleteStep:
    """One DELETE by digest, and the tags it is expected to remove.

    A ``REWRITE`` step instead puts ``replacement`` (the referrers index without
    the entries being deleted) under its tag, then deletes the old index by digest.
    ``unlisted_from`` names kept referrers indexes that must no longer list this
    manifest when it is deleted (their rewrite comes first; if it failed, so does this).
    """

    repository: str
    digest: str
    tags: tuple[str, ...]
    media_type: str
    phase: Phase
    reason: str
    attachment: str | None = None
    subject: str | None = None
    replacement: bytes | None = None
    unlisted_from: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Orphan:
    """An attachment whose subject no longer exists in its repository, and what becomes of it."""

    repository: str
    digest: str
    tags: tuple[str, ...]
    kind: str
    subject: str
    action: Action
    reason: str
    bytes: int  # its manifest and the blobs it references, each once (blobs shared with others included)
