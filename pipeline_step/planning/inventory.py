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
    ghosts: set[str] = field(default_factory=set)  # direct mode: tag directories left without a link, long enough ago
    manifests: dict[str, Manifest] = field(default_factory=dict)
    created: dict[str, datetime | None] = field(default_factory=dict)  # digest -> created, when asked for
    untagged: set[str] = field(default_factory=set)  # revisions without tags (direct mode only)

    def digests(self) -> set[str]:
        return set(self.tags.values())


def config_digests(digest: str, manifests: dict[str, Manifest]) -> list[str]:
    """The config blobs whose ``created`` dates ``digest``: its own, or every child's for an index."""
    manifest = manifests.get(digest)
    if manifest is None:
        return []
    if manifest.is_index:
        return [config for child in manifest.children for config in config_digests(child.digest, manifests)]
    return [manifest.config.digest] if manifest.config is not None else []


def created_of(digest: str, manifests: dict[str, Manifest], configs: dict[str, datetime | None]) -> datetime | None:
    """An image's config time; an index's newest child. Unknown anywhere means unknown."""
    manifest = manifests.get(digest)
    if manifest is None:
        return None
    if manifest.is_index:
        times = [created_of(child.digest, manifests, configs) for child in manifest.children]
        if not times or any(t is None for t in times):
            return None
        return max(t for t in times if t is not None)
    if manifest.config is None:
        return None
    return configs.get(manifest.config.digest)
