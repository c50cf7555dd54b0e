"""The inventory data model: plain dataclasses, filled by a source."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from pipeline_step.registry.model import Manifest


@dataclass(slots=True)
class RepositoryInventory:
    """One repository as seen at planning time.

    ``tags`` maps each resolved tag to its manifest digest. ``unresolved``
    holds tags whose digest could not be learned, with the reason; while any
    exist (other than tags that vanished), nothing in the repository is deleted,
    because an unresolved tag might share a digest we would delete.
    """

    name: str
    tags: dict[str, str] = field(default_factory=dict)
    unresolved: dict[str, str] = field(default_factory=dict)
    vanished: set[str] = field(default_factory=set)  # listed, then 404: no digest to protect
    manifests: dict[str, Manifest] = field(default_factory=dict)
    created: dict[str, datetime | None] = field(default_factory=dict)  # digest -> created, when asked for
    untagged: set[str] = field(default_factory=set)  # revisions without tags (direct mode only)

    def digests(self) -> set[str]:
        return set(self.tags.values())

    def tags_by_digest(self) -> dict[str, list[str]]:
        grouped: dict[str, list[str]] = {}
        for tag in sorted(self.tags):
            grouped.setdefault(self.tags[tag], []).append(tag)
        return grouped
