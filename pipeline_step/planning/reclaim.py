"""Predict the bytes garbage collection will free after a plan is executed.

GC frees a blob when no remaining manifest in any repository references it.
So the prediction is: every blob (layers, configs and the manifests' own
bytes) referenced by a deleted manifest, minus every blob still referenced by
a surviving manifest in any repository scanned, each blob counted once.
Repositories not scanned cannot protect a shared layer, so a prediction over
fewer repositories than the catalog is an upper bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, Mapping

from pipeline_step.inventory.model import RepositoryInventory
from pipeline_step.registry.model import Manifest


@dataclass(frozen=True, slots=True)
class ReclaimEstimate:
    bytes: int
    blobs: int
    repositories_scanned: int
    catalog_wide: bool = False  # every repository of the catalog was scanned


def referenced(manifest: Manifest) -> Iterator[tuple[str, int]]:
    """(digest, size) of the manifest's own blob and every blob it references directly."""
    yield manifest.digest, manifest.size
    for blob in manifest.blobs():
        yield blob.digest, blob.size


def reclaimable_blobs(
    inventories: Iterable[RepositoryInventory], deleted: Mapping[str, set[str]]
) -> tuple[dict[str, int], int]:
    """(digest -> size of every blob GC would free, repositories scanned)."""
    surviving: set[str] = set()
    freed: dict[str, int] = {}
    count = 0
    for inventory in inventories:
        count += 1
        gone = deleted.get(inventory.name, set())
        for digest, manifest in inventory.manifests.items():
            target = freed if digest in gone else None
            for blob_digest, size in referenced(manifest):
                if target is None:
                    surviving.add(blob_digest)
                else:
                    target[blob_digest] = size
        # Untagged revisions (seen only in direct mode) keep their blobs alive.
        for digest in inventory.untagged - gone:
            surviving.add(digest)
            revision = inventory.manifests.get(digest)
            if revision is not None:
                surviving.update(d for d, _ in referenced(revision))
    return {digest: size for digest, size in freed.items() if digest not in surviving}, count


def predict_reclaim(
    inventories: Iterable[RepositoryInventory], deleted: Mapping[str, set[str]], *, catalog_wide: bool = False
) -> ReclaimEstimate:
    """``deleted`` maps repository name to the manifest digests the plan deletes."""
    reclaimable, count = reclaimable_blobs(inventories, deleted)
    return ReclaimEstimate(sum(reclaimable.values()), len(reclaimable), count, catalog_wide)
