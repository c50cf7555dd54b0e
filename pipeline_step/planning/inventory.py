"""The inventory data model: plain dataclasses, filled by a source."""

from __future__ import annotations

from collections.abc import Mapping
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
    unreadable: dict[str, str] = field(default_factory=dict)  # index children whose answer was corrupt -> why
    manifests: dict[str, Manifest] = field(default_factory=dict)
    created: dict[str, datetime | None] = field(default_factory=dict)  # digest -> created, when asked for
    untagged: set[str] = field(default_factory=set)  # revisions without tags (direct mode only)
    # Direct mode with --registry: tags the storage holds but the registry's tag list does not show
    # (distribution #4891), and why the lists could not be compared when they could not.
    hidden: set[str] = field(default_factory=set)
    unchecked: str | None = None
    schema1: dict[str, str | None] = field(default_factory=dict)  # tag -> digest (None: 3.x cannot say) of schema1
    # Attachments (planning/attachments.py): the bytes of referrers-tag indexes, so a kept one can be
    # rewritten without an entry; subjects that exist here untagged (a HEAD by digest found them);
    # subjects whose existence could not be checked (-> kept); where the subjects of orphans were
    # found in other repositories (None: not looked for); digests an earlier run deleted here.
    raw: dict[str, bytes] = field(default_factory=dict)
    present: set[str] = field(default_factory=set)
    uncertain: dict[str, str] = field(default_factory=dict)
    elsewhere: dict[str, str] | None = None
    elsewhere_error: str | None = None
    deleted_before: set[str] = field(default_factory=set)

    def digests(self) -> set[str]:
        return set(self.tags.values())


def platform_children(manifest: Manifest) -> list[str]:
    """An index's children apart from buildx attestation manifests, whose configs carry no time."""
    attestations = {child for child, _ in manifest.attestations}
    return [child.digest for child in manifest.children if child.digest not in attestations]


def config_digests(digest: str, manifests: dict[str, Manifest]) -> list[str]:
    """The config blobs whose ``created`` dates ``digest``: its own, or every platform child's for an index."""
    manifest = manifests.get(digest)
    if manifest is None:
        return []
    if manifest.is_index:
        return [config for child in platform_children(manifest) for config in config_digests(child, manifests)]
    return [manifest.config.digest] if manifest.config is not None else []


def created_of(digest: str, manifests: dict[str, Manifest], configs: dict[str, datetime | None]) -> datetime | None:
    """An image's config time; an index's newest platform child (attestation manifests are not
    images: buildx gives them no time). Unknown anywhere means unknown."""
    manifest = manifests.get(digest)
    if manifest is None:
        return None
    if manifest.is_index:
        times = [created_of(child, manifests, configs) for child in platform_children(manifest)]
        if not times or any(t is None for t in times):
            return None
        return max(t for t in times if t is not None)
    if manifest.config is None:
        return None
    return configs.get(manifest.config.digest)


MAX_INDEX_DEPTH = 8  # indexes of indexes: real ones nest two or three deep
MAX_INDEX_CHILDREN = 10_000  # a multi-platform index with attestations has a few dozen


def tree_problem(digest: str, manifests: dict[str, Manifest], unreadable: Mapping[str, str] = {}) -> str | None:
    """Why the manifest tree under ``digest`` must not be planned: too deep, too wide, or a cycle
    (impossible with verified digests, so only a hostile source gives one); None when it is sound."""
    stack: list[tuple[str, int, tuple[str, ...]]] = [(digest, 0, ())]
    while stack:
        current, depth, path = stack.pop()
        if current in unreadable:
            return f"its child {current} cannot be trusted: {unreadable[current]}"
        manifest = manifests.get(current)
        if manifest is None or not manifest.is_index:
            continue
        if current in path:
            return f"index {current} references itself through {len(path)} levels (a cycle)"
        if depth >= MAX_INDEX_DEPTH:
            return f"indexes nest deeper than {MAX_INDEX_DEPTH} levels under {digest}"
        if len(manifest.children) > MAX_INDEX_CHILDREN:
            return f"index {current} has {len(manifest.children)} children, more than {MAX_INDEX_CHILDREN}"
        stack.extend((child.digest, depth + 1, (*path, current)) for child in manifest.children)
    return None


def refuse_unsound_trees(inventory: RepositoryInventory) -> None:
    """Tags whose manifest tree is unsound become unresolved: the planner then deletes nothing here."""
    verdicts: dict[str, str | None] = {}
    for tag, digest in list(inventory.tags.items()):
        if digest not in verdicts:
            verdicts[digest] = tree_problem(digest, inventory.manifests, inventory.unreadable)
        problem = verdicts[digest]
        if problem is not None:
            del inventory.tags[tag]
            inventory.unresolved[tag] = problem
